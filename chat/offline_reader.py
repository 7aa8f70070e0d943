"""The offline interpreter: an honest reading composed from the poem's own text, no LLM."""

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


def compose_reading(question: str, poem: Poem, passages: list[Passage]) -> str:
    topic = next((p.topic for p in passages if p.poem == poem.id and p.topic in _TOPIC_NAMES), None)
    if passages and passages[0].score <= 0.05:
        topic = None  # nothing in the question pointed at a topic
    lines = [
        f'You drew poem {poem.number} of {poem.temple.name}, "{poem.title}" ({poem.rank}).',
        poem.meaning,
    ]
    if topic:
        lines.append(f"On {_TOPIC_NAMES[topic]}: {poem.advice[topic]}")
    else:
        lines.append("Read the verse slowly and let it speak to the question you carry.")
    return "\n\n".join(lines)
