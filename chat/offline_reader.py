"""The offline interpreter: an honest reading composed from the poem's own text, no LLM."""

from collections.abc import Sequence

from rag.models import Poem
from rag.passages import Passage

_TOPIC_NAMES = {
    "career": "work",
    "love": "love",
    "family": "family",
    "health": "health",
    "wealth": "money",
    "travel": "travel",
    "study": "study",
    "lost_items": "what was lost",
    "disputes": "the dispute",
}


def compose_reading(question: str, poem: Poem, passages: list[Passage], topics: Sequence[str] | None = None) -> str:
    """The poem's meaning, then its advice on the routed `topics` (best first) that it has.
    Without `topics` (callers from before routing) the first of the poem's own advice passages
    stands for the question's topic."""
    chosen = [t for t in (_guess(poem, passages) if topics is None else topics) if poem.advice.get(t)]
    lines = [
        f'You drew poem {poem.number} of {poem.temple.name}, "{poem.title}" ({poem.rank}).',
        poem.meaning,
    ]
    lines += [f"On {_TOPIC_NAMES[t]}: {poem.advice[t]}" for t in chosen if t in _TOPIC_NAMES]
    if not chosen:
        lines.append("Read the verse slowly and let it speak to the question you carry.")
    return "\n\n".join(lines)


def _guess(poem: Poem, passages: list[Passage]) -> list[str]:
    topic = next((p.topic for p in passages if p.poem == poem.id and p.topic in _TOPIC_NAMES), None)
    if topic is None or (passages and passages[0].score <= 0.05):
        return []  # nothing in the question pointed at a topic
    return [topic]
