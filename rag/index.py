"""The Chroma index of the poems: derived from the database, rebuilt by `rag_reindex`, kept
current by `load_poems`. One collection per embedding model (and passage format), so vectors
from different models never meet."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import TextIOBase

from django.conf import settings

from rag import chroma_client, embeddings
from rag.loader import poem_problem
from rag.models import TOPICS, Poem
from rag.passages import poem_passages

# Bump when the text we embed changes: the index then lives in a new collection.
PASSAGE_FORMAT = 1
POEMS_PER_BATCH = 64
ALL_TOPICS = ("verse", "meaning", *TOPICS)

# What each passage is about, put before its text when embedding. The advice texts rarely
# name their topic ("the bridge you seek will be built"), so a question "will I meet someone?"
# needs this label to land on the love advice rather than on a verse about bridges.
TOPIC_LABELS = {
    "career": "Advice on career, work, job, business and promotion",
    "love": "Advice on love, romance, dating, partner, relationships and marriage",
    "family": "Advice on family, parents, children, siblings and home",
    "health": "Advice on health, illness, body, recovery and healing",
    "wealth": "Advice on wealth, money, finances, savings, debt and investments",
    "travel": "Advice on travel, journeys, trips, moving and relocation",
    "study": "Advice on study, exams, school, learning and education",
    "lost_items": "Advice on lost items, missing belongings and finding lost things",
    "disputes": "Advice on disputes, quarrels, conflicts, lawsuits and arguments",
}


@dataclass(frozen=True)
class Document:
    id: str
    text: str  # what is stored and shown
    embed_text: str  # what is embedded
    metadata: dict


@dataclass
class IndexReport:
    poems: int = 0
    passages: int = 0
    removed: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (poem id, why) left out


def collection_name() -> str:
    name = f"{settings.CHROMA_COLLECTION_PREFIX}-{embeddings.model_id()}-p{PASSAGE_FORMAT}"
    return embeddings.safe_name(name)[:512]


def passage_id(poem_id: int, topic: str) -> str:
    return f"poem-{poem_id}-{topic}"


def embed_text(poem: Poem, topic: str, text: str) -> str:
    if topic == "verse":
        return f"Fortune poem {poem.title}: {text}"
    if topic == "meaning":
        return f"Overall meaning of the fortune poem {poem.title}: {text}"
    return f"{TOPIC_LABELS[topic]}: {text}"


def documents(poem: Poem) -> list[Document]:
    """The poem as passages: verse, overall meaning and each topic's advice."""
    base = {
        "temple": poem.temple.slug,
        "poem_id": poem.id,
        "number": poem.number,
        "rank": poem.rank,
        "language": poem.language,
    }
    return [
        Document(passage_id(poem.id, p.topic), p.text, embed_text(poem, p.topic, p.text), base | {"topic": p.topic})
        for p in poem_passages(poem)
    ]


def index_poems(poem_ids: Iterable[int]) -> IndexReport:
    """(Re)index these poems; passages of deleted poems or dropped topics are removed. A poem
    `load_poems` would refuse today (over a size limit, malformed advice: written before the
    limits or through the admin) is left out and named in `skipped`, so it cannot fill results."""
    wanted = list(dict.fromkeys(poem_ids))
    report = IndexReport()
    docs = []
    for poem in Poem.objects.filter(id__in=wanted).select_related("temple"):
        problem = poem_problem(poem)
        if problem:
            report.skipped.append((poem.id, f"{poem}: {problem}"))
            continue
        report.poems += 1
        docs += documents(poem)
    _upsert(docs)
    kept = {d.id for d in docs}
    stale = [passage_id(i, t) for i in wanted for t in ALL_TOPICS if passage_id(i, t) not in kept]
    # Deleting ids that were never indexed is a no-op, so this needs no read first.
    chroma_client.delete(collection_name(), stale, timeout=settings.RAG_INDEX_TIMEOUT)
    report.passages = len(docs)
    return report


def reindex_all(progress: Callable[[int, int], None] | None = None, fresh: bool = False) -> IndexReport:
    """Index every poem, then remove what the database no longer has. The collection keeps
    answering meanwhile; `fresh` drops it first (for a store you no longer trust)."""
    if fresh:
        chroma_client.delete_collection(collection_name(), timeout=settings.RAG_INDEX_TIMEOUT)
    ids = list(Poem.objects.order_by("id").values_list("id", flat=True))
    report = IndexReport()
    for start in range(0, len(ids), POEMS_PER_BATCH):
        batch = index_poems(ids[start : start + POEMS_PER_BATCH])
        report.poems += batch.poems
        report.passages += batch.passages
        report.skipped += batch.skipped
        if progress:
            progress(report.poems + len(report.skipped), len(ids))
    report.removed = _remove_orphans(set(ids))
    return report


def other_collections() -> list[str]:
    """Collections of ours built for another model or passage format."""
    prefix, current = f"{embeddings.safe_name(settings.CHROMA_COLLECTION_PREFIX)}-", collection_name()
    names = chroma_client.list_collections(timeout=settings.RAG_INDEX_TIMEOUT)
    return sorted(n for n in names if n.startswith(prefix) and n != current)


def prune_other_collections() -> list[str]:
    names = other_collections()
    for name in names:
        chroma_client.delete_collection(name, timeout=settings.RAG_INDEX_TIMEOUT)
    return names


def _upsert(docs: list[Document]) -> None:
    if not docs:
        return
    vectors = embeddings.embed([d.embed_text for d in docs], timeout=settings.RAG_INDEX_TIMEOUT)
    chroma_client.upsert(
        collection_name(),
        ids=[d.id for d in docs],
        embeddings=vectors,
        documents=[d.text for d in docs],
        metadatas=[d.metadata for d in docs],
        timeout=settings.RAG_INDEX_TIMEOUT,
        collection_metadata={"model": embeddings.model_id(), "passage_format": PASSAGE_FORMAT},
    )


def _remove_orphans(poem_ids: set[int]) -> int:
    if not poem_ids:
        chroma_client.delete_collection(collection_name(), timeout=settings.RAG_INDEX_TIMEOUT)
        return 0
    indexed = chroma_client.list_ids(collection_name(), timeout=settings.RAG_INDEX_TIMEOUT)
    orphans = [i for i in indexed if _poem_of(i) not in poem_ids]
    chroma_client.delete(collection_name(), orphans, timeout=settings.RAG_INDEX_TIMEOUT)
    return len(orphans)


def _poem_of(doc_id: str) -> int | None:
    parts = doc_id.split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[0] == "poem" and parts[1].isdigit() else None


class LoadIndexer:
    """For `load_poems`, called with each batch of changed poems as soon as it is written, so
    what was saved is indexed even when a later row or the file fails. A failure is reported,
    never fatal: the poems are loaded (retrieval falls back to their text) and `rag_reindex`
    catches up. After one failure it stops trying, since each attempt would wait out a timeout."""

    def __init__(self) -> None:
        self.report = IndexReport()
        self.failure = ""
        self.missed = 0

    def __call__(self, poem_ids: list[int]) -> None:
        if not self.failure:
            try:
                batch = index_poems(poem_ids)
            except (chroma_client.ChromaUnavailable, embeddings.EmbeddingError) as exc:
                self.failure = str(exc) or type(exc).__name__
            else:
                self.report.poems += batch.poems
                self.report.passages += batch.passages
                self.report.skipped += batch.skipped
                return
        self.missed += len(poem_ids)

    def summary(self, stdout: TextIOBase, stderr: TextIOBase) -> None:
        for _, why in self.report.skipped:
            stderr.write(f"Not indexed: {why}")
        if self.report.poems:
            stdout.write(
                f"Indexed {self.report.poems} poem(s), {self.report.passages} passage(s) into {collection_name()}."
            )
        if self.failure:
            stderr.write(
                f"Indexing failed ({self.failure}); {self.missed} changed poem(s) are loaded but not indexed: "
                "run `manage.py rag_reindex` later."
            )
