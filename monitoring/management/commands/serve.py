from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from monitoring.supervisor import Supervisor, children

SAMPLE_POEMS = Path(settings.BASE_DIR) / "rag" / "data" / "sample_poems.jsonl"


class Command(BaseCommand):
    help = "Prepare the database and run web, task cluster and sweeper together until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-sample-poems", action="store_true", help="do not load the sample corpus")

    def handle(self, *args, host: str, port: int, no_sample_poems: bool, **options):
        self.stdout.write("Preparing the database…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        if not no_sample_poems:
            self.stdout.write("Loading the sample poems…")
            call_command("load_poems", str(SAMPLE_POEMS))
        self.stdout.write(f"Fortune Desk on http://{host}:{port}/ — API at /api/v1/, docs at /api/docs/. Ctrl-C stops.")
        Supervisor(children(host, port)).run()
