"""The interpretation seam the pipeline calls. Without an LLM configured, the offline reader
answers and the result is marked degraded (`llm_unconfigured`)."""

from collections.abc import Callable
from dataclasses import dataclass, field

from chat.offline_reader import compose_reading
from monitoring.timeouts import Deadline
from rag.models import Poem
from rag.passages import Passage


@dataclass
class Interpretation:
    text: str
    degraded_reasons: list[str] = field(default_factory=list)


def interpret(
    question: str,
    poem: Poem,
    passages: list[Passage],
    deadline: Deadline,
    on_text: Callable[[str], None] | None = None,
) -> Interpretation:
    deadline.budget(1)
    return Interpretation(compose_reading(question, poem, passages), ["llm_unconfigured"])
