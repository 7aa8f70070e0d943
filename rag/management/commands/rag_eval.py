from django.core.management.base import BaseCommand, CommandError

from rag.embeddings import EmbeddingError
from rag.evaluation import evaluate, report


class Command(BaseCommand):
    help = "Topic-routing accuracy: held-out top-1/top-2, cross-validation, per-topic recall, confusion, misses."

    def add_arguments(self, parser):
        parser.add_argument(
            "--min-top1", type=float, default=0.0, help="fail (exit 1) when held-out top-1 is below this percentage"
        )
        parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")

    def handle(self, *args, min_top1: float, folds: int, **options):
        if folds < 2:
            raise CommandError("--folds must be at least 2")
        try:
            evaluation = evaluate(folds=folds)
        except EmbeddingError as exc:
            raise CommandError(f"the embedding model is unavailable: {exc}") from exc
        self.stdout.write("\n".join(report(evaluation)))
        top1 = evaluation.heldout.top1 * 100
        if top1 < min_top1:
            raise CommandError(f"held-out top-1 {top1:.1f} % is below --min-top1 {min_top1:g} %")
