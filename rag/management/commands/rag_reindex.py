from django.core.management.base import BaseCommand, CommandError

from rag import chroma_client, index
from rag.chroma_client import ChromaUnavailable
from rag.embeddings import EmbeddingError


class Command(BaseCommand):
    help = "Rebuild the ChromaDB index from the database (the source of truth)."

    def add_arguments(self, parser):
        parser.add_argument("--fresh", action="store_true", help="drop the collection first instead of updating it")
        parser.add_argument(
            "--prune", action="store_true", help="delete our collections built for another embedding model"
        )

    def handle(self, *args, fresh: bool, prune: bool, **options):
        where = "server" if not chroma_client.embedded() else "embedded store"
        try:
            self.stdout.write(f"Indexing into {index.collection_name()} ({where})…")
            report = index.reindex_all(progress=self._progress, fresh=fresh)
            others = index.prune_other_collections() if prune else index.other_collections()
        except (ChromaUnavailable, EmbeddingError) as exc:
            raise CommandError(f"indexing failed: {exc}") from exc
        for _, why in report.skipped:
            self.stderr.write(f"Not indexed: {why}")
        skipped = f"; {len(report.skipped)} poem(s) not indexed (see above)" if report.skipped else ""
        self.stdout.write(
            f"Indexed {report.poems} poem(s), {report.passages} passage(s); "
            f"removed {report.removed} stale passage(s){skipped}."
        )
        if others:
            verb = "Deleted" if prune else "Other collections (delete with --prune):"
            self.stdout.write(f"{verb} {', '.join(others)}")

    def _progress(self, done: int, total: int) -> None:
        self.stdout.write(f"  {done}/{total} poems")
