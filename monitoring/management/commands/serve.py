from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from monitoring.supervisor import Supervisor, children
from rag import chroma_client, index
from rag.chroma_client import ChromaUnavailable
from rag.models import Poem

SAMPLE_POEMS = Path(settings.BASE_DIR) / "rag" / "data" / "sample_poems.jsonl"


class Command(BaseCommand):
    help = "Prepare the database and run web, task cluster and sweeper together until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-sample-poems", action="store_true", help="do not load the sample corpus")

    def handle(self, *args, host: str, port: int, no_sample_poems: bool, **options):
        self.stdout.write("Preparing the database and the static files…")
        call_command("migrate", interactive=False, verbosity=0)  # the cache table too (resilience 0002)
        call_command("collectstatic", interactive=False, verbosity=0)  # WhiteNoise serves STATIC_ROOT
        if not no_sample_poems:
            self.stdout.write("Loading the sample poems…")
            call_command("load_poems", str(SAMPLE_POEMS))
        self._ensure_index()
        self.stdout.write(f"Fortune Desk on http://{host}:{port}/ — API at /api/v1/, docs at /api/docs/. Ctrl-C stops.")
        Supervisor(children(host, port)).run()

    def _ensure_index(self) -> None:
        """Rebuild an empty or missing index (a deleted store keeps the database, so load_poems
        would see nothing changed); without Chroma the system still runs, degraded."""
        try:
            indexed = chroma_client.count(index.collection_name(), timeout=30)
        except ChromaUnavailable:
            indexed = 0
        if indexed or not Poem.objects.exists():
            return
        try:
            call_command("rag_reindex")
        except CommandError as exc:
            self.stderr.write(f"Retrieval will run degraded until `manage.py rag_reindex` succeeds: {exc}")
