from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from fortune_project.resilience.deadlines import Deadline
from rag.chroma_client import ChromaUnavailable
from rag.embeddings import EmbeddingError
from rag.models import Poem, Temple
from rag.passages import Passage
from rag.retrieval import retrieve, search


class Command(BaseCommand):
    help = "Show what retrieval returns for a question: ranked passages (or, with --poem, what a task gets)."

    def add_arguments(self, parser):
        parser.add_argument("text")
        parser.add_argument("--temple", help="temple slug to search within")
        parser.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
        parser.add_argument("--poem", type=int, help="a poem id: show the pipeline's retrieval for that poem")

    def handle(self, *args, text: str, temple: str | None, k: int, poem: int | None, **options):
        if k < 1:
            raise CommandError("-k must be at least 1")
        if poem is not None:
            self._show_poem_retrieval(text, poem)
            return
        try:
            passages = search(text, self._temple(temple), k)
        except (ChromaUnavailable, EmbeddingError) as exc:
            raise CommandError(f"retrieval is unavailable: {exc}") from exc
        self._print(passages)

    def _temple(self, slug: str | None) -> Temple | None:
        if slug is None:
            return None
        try:
            return Temple.objects.get(slug=slug)
        except Temple.DoesNotExist:
            raise CommandError(f"no temple with slug {slug!r}") from None

    def _show_poem_retrieval(self, text: str, poem_id: int) -> None:
        try:
            poem = Poem.objects.select_related("temple").get(id=poem_id)
        except Poem.DoesNotExist:
            raise CommandError(f"no poem with id {poem_id}") from None
        deadline = Deadline(timezone.now() + timedelta(seconds=60))
        result = retrieve(text, poem, deadline)
        self.stdout.write("topics: " + (", ".join(f"{t.topic} {t.score:.2f}" for t in result.topics) or "none"))
        if result.degraded_reasons:
            self.stdout.write(f"degraded: {', '.join(result.degraded_reasons)}")
        self._print(result.passages)

    def _print(self, passages: list[Passage]) -> None:
        numbers = dict(Poem.objects.filter(id__in={p.poem for p in passages}).values_list("id", "number"))
        for rank, p in enumerate(passages, start=1):
            text = " ".join(p.text.split())
            self.stdout.write(
                f"{rank:>2}. {p.score:6.3f}  poem {p.poem} (#{numbers.get(p.poem, '?')})  {p.topic:<10}  {text[:90]}"
            )
        if not passages:
            self.stdout.write("No passages.")
