from django.core.management.base import BaseCommand, CommandError

from rag import router
from rag.embeddings import EmbeddingError


class Command(BaseCommand):
    help = "Train the topic router on rag/data/questions/train.jsonl and save it in rag/data/router/."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=600, help="seconds to embed the questions")

    def handle(self, *args, timeout: float, **options):
        try:
            path = router.build_shipped(timeout)
        except EmbeddingError as exc:
            raise CommandError(f"the embedding model is unavailable: {exc}") from exc
        self.stdout.write(f"Saved the topic router to {path}.")
