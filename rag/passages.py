"""Poems as retrievable passages, and the database-only retrieval used when Chroma cannot help."""

import re
from dataclasses import asdict, dataclass

from rag.models import TOPICS, Poem

# Words that mark a question's topic, for the keyword fallback and the offline interpreter.
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "career": (
        "job",
        "work",
        "career",
        "boss",
        "promotion",
        "business",
        "shop",
        "office",
        "colleague",
        "hire",
        "hired",
        "interview",
        "company",
        "startup",
        "profession",
        "employ",
    ),
    "love": (
        "love",
        "partner",
        "romance",
        "relationship",
        "marriage",
        "marry",
        "girlfriend",
        "boyfriend",
        "husband",
        "wife",
        "date",
        "dating",
        "crush",
        "wedding",
        "heart",
        "soulmate",
    ),
    "family": (
        "family",
        "parent",
        "mother",
        "father",
        "child",
        "children",
        "son",
        "daughter",
        "sibling",
        "brother",
        "sister",
        "home",
        "grandparent",
        "grandmother",
        "grandfather",
        "relatives",
    ),
    "health": (
        "health",
        "ill",
        "illness",
        "sick",
        "recover",
        "recovery",
        "doctor",
        "surgery",
        "body",
        "pain",
        "hospital",
        "disease",
        "sleep",
        "medicine",
        "healthy",
        "injury",
    ),
    "wealth": (
        "money",
        "wealth",
        "rich",
        "invest",
        "investment",
        "savings",
        "debt",
        "loan",
        "stock",
        "finance",
        "financial",
        "salary",
        "fortune",
        "profit",
        "income",
        "lottery",
    ),
    "travel": (
        "travel",
        "trip",
        "journey",
        "move",
        "moving",
        "abroad",
        "flight",
        "road",
        "relocate",
        "visit",
        "vacation",
        "voyage",
        "emigrate",
        "overseas",
    ),
    "study": (
        "study",
        "exam",
        "exams",
        "school",
        "university",
        "college",
        "learn",
        "learning",
        "test",
        "degree",
        "student",
        "studies",
        "scholarship",
        "course",
        "grade",
        "thesis",
    ),
    "lost_items": (
        "lost",
        "lose",
        "missing",
        "find",
        "found",
        "misplaced",
        "stolen",
        "wallet",
        "keys",
        "ring",
        "phone",
        "search",
        "lose",
        "vanished",
    ),
    "disputes": (
        "dispute",
        "quarrel",
        "fight",
        "argument",
        "lawsuit",
        "court",
        "conflict",
        "negotiation",
        "negotiate",
        "legal",
        "sue",
        "neighbor",
        "neighbour",
        "feud",
        "settle",
        "disagreement",
    ),
}
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Passage:
    poem: int
    topic: str
    text: str
    score: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"score": round(self.score, 4)}


def poem_passages(poem: Poem) -> list[Passage]:
    """Verse, overall meaning and each topic's advice: the units retrieval works with."""
    passages = [Passage(poem.id, "verse", poem.verse), Passage(poem.id, "meaning", poem.meaning)]
    passages += [Passage(poem.id, t, poem.advice[t]) for t in TOPICS if poem.advice.get(t)]
    return passages


def topic_scores(question: str) -> dict[str, float]:
    words = set(_WORD.findall(question.lower()))
    stems = {w.rstrip("s") for w in words}
    return {topic: float(sum(1 for k in keys if k in words or k in stems)) for topic, keys in TOPIC_WORDS.items()}


def guess_topic(question: str) -> str | None:
    scores = topic_scores(question)
    best = max(scores, key=lambda t: scores[t])
    return best if scores[best] > 0 else None


def keyword_passages(question: str, poem: Poem) -> list[Passage]:
    """The poem's passages ranked by keyword match: the guessed topic first, then its meaning."""
    scores = topic_scores(question)
    total = sum(scores.values()) or 1.0
    ranked = []
    for p in poem_passages(poem):
        score = scores.get(p.topic, 0.0) / total
        if p.topic == "meaning":
            score = 0.05  # always relevant, never above a topic that matched
        ranked.append(Passage(p.poem, p.topic, p.text, score))
    ranked.sort(key=lambda p: -p.score)
    return ranked
