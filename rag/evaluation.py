"""How well the topic router routes: the figures `manage.py rag_eval` prints.

The router is trained exactly as at run time (train.jsonl plus the topic descriptions) and
scored on heldout.jsonl, which only this module reads. Cross-validation pools both files and
trains each fold afresh. Scoring, the same everywhere: a question counts as right at top-1 only
when the best topic is its primary (first-listed) topic, also when it lists two; "any listed"
also accepts its second topic; top-2 asks whether the primary is among the best two; "routed"
whether it is among the topics the router returns (the best, plus the runner-up within
ROUTER_MARGIN).
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from rag import embeddings, router
from rag.models import TOPICS
from rag.router import QUESTIONS_DIR, Example
from rag.router_model import NEIGHBOURS, VOTE_WEIGHT

HELDOUT_FILE = QUESTIONS_DIR / "heldout.jsonl"
EMBED_TIMEOUT = 600.0  # seconds to embed every labelled question: a command, not a request


@dataclass(frozen=True)
class Outcome:
    example: Example
    ranked: tuple[str, ...]  # every topic, best first
    routed: tuple[str, ...]
    score: float  # the best topic's

    @property
    def top1(self) -> bool:
        return self.ranked[0] == self.example.primary


@dataclass
class Scores:
    outcomes: list[Outcome]

    def share(self, test) -> float:
        return sum(1 for o in self.outcomes if test(o)) / max(len(self.outcomes), 1)

    @property
    def top1(self) -> float:
        return self.share(lambda o: o.top1)

    @property
    def top1_any(self) -> float:
        return self.share(lambda o: o.ranked[0] in o.example.topics)

    @property
    def top2(self) -> float:
        return self.share(lambda o: o.example.primary in o.ranked[:2])

    @property
    def routed(self) -> float:
        return self.share(lambda o: o.example.primary in o.routed)

    @property
    def two_routed(self) -> float:
        return self.share(lambda o: len(o.routed) == 2)

    def recall(self) -> dict[str, tuple[int, int]]:
        """Per primary topic: (right at top-1, questions)."""
        asked = Counter(o.example.primary for o in self.outcomes)
        right = Counter(o.example.primary for o in self.outcomes if o.top1)
        return {t: (right[t], asked[t]) for t in TOPICS}

    def confusion(self) -> Counter:
        return Counter((o.example.primary, o.ranked[0]) for o in self.outcomes)

    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.top1]


@dataclass
class Evaluation:
    model: str
    train: list[Example]
    heldout: Scores
    baseline_top1: float  # nearest prototype, on the held-out part
    folds: list[Scores]  # cross-validation over train and held-out together


def score(examples: Sequence[Example], probabilities: np.ndarray) -> Scores:
    outcomes = []
    for example, row in zip(examples, probabilities, strict=True):
        routing = router.routing_from_scores(row, "model")
        ranked = tuple(t.topic for t in routing.ranked)
        outcomes.append(Outcome(example, ranked, tuple(routing.topics), routing.ranked[0].score))
    return Scores(outcomes)


def evaluate(folds: int = 5, seed: int = 0) -> Evaluation:
    """Embeds every labelled question once (EmbeddingError without the model), then trains."""
    train = router.read_examples(router.TRAIN_FILE)
    heldout = router.read_examples(HELDOUT_FILE)
    descriptions = router.read_descriptions()
    texts = [e.question for e in train + heldout] + [descriptions[t] for t in TOPICS]
    vectors = np.array(embeddings.embed(texts, timeout=EMBED_TIMEOUT))
    questions, described = vectors[: len(train) + len(heldout)], vectors[len(train) + len(heldout) :]
    train_x, heldout_x = questions[: len(train)], questions[len(train) :]
    model = router.train_with_descriptions(train_x, router.targets(train), described)
    return Evaluation(
        model=embeddings.model_id(),
        train=train,
        heldout=score(heldout, model.probabilities(heldout_x)),
        baseline_top1=_prototype_top1(train, train_x, heldout, heldout_x, described),
        folds=cross_validate(train + heldout, questions, described, folds, seed),
    )


def cross_validate(
    examples: list[Example], vectors: np.ndarray, described: np.ndarray, folds: int, seed: int
) -> list[Scores]:
    order = np.random.default_rng(seed).permutation(len(examples))
    results = []
    for fold in range(folds):
        test = order[fold::folds]
        fit = np.setdiff1d(order, test)
        fitted = [examples[i] for i in fit]
        model = router.train_with_descriptions(vectors[fit], router.targets(fitted), described)
        results.append(score([examples[i] for i in test], model.probabilities(vectors[test])))
    return results


def _prototype_top1(train, train_x, heldout, heldout_x, described) -> float:
    """The baseline: each topic's mean question vector (plus its description), nearest wins."""
    primaries = np.array([TOPICS.index(e.primary) for e in train])
    centres = np.stack([train_x[primaries == k].sum(axis=0) + described[k] for k in range(len(TOPICS))])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    nearest = np.argmax(heldout_x @ centres.T, axis=1)
    return float(np.mean([TOPICS[k] == e.primary for k, e in zip(nearest, heldout, strict=True)]))


# --- The report ----------------------------------------------------------------------------------

SHORT = {t: t[:4] for t in TOPICS} | {"lost_items": "lost", "disputes": "disp"}


def pct(value: float) -> str:
    return f"{value * 100:5.1f} %"


def report(ev: Evaluation) -> list[str]:
    held = ev.heldout
    held_multi = sum(1 for o in held.outcomes if len(o.example.topics) > 1)
    train_multi = sum(1 for e in ev.train if len(e.topics) > 1)
    pooled = Scores([o for fold in ev.folds for o in fold.outcomes])
    lines = [
        f"Topic router: softmax regression blended with a {NEIGHBOURS}-nearest-question vote "
        f"({VOTE_WEIGHT:g} of the score) on {ev.model} question embeddings.",
        f"Trained on {len(ev.train)} questions ({train_multi} with two topics) and the 9 topic descriptions; "
        f"held out: {len(held.outcomes)} questions ({held_multi} with two topics), never used in training.",
        "Scoring: top-1 counts a question right only when the best topic is its primary (first-listed) topic, "
        "for two-topic questions too; 'any listed' also accepts their second topic; top-2: the primary is "
        f"among the best two; routed: the primary is among the routed topics (margin {settings.ROUTER_MARGIN}).",
        "",
        f"Held-out      top-1 {pct(held.top1)}   any listed {pct(held.top1_any)}   top-2 {pct(held.top2)}   "
        f"routed {pct(held.routed)} (two topics routed for {pct(held.two_routed).strip()})",
        f"Baseline      top-1 {pct(ev.baseline_top1)}   (nearest prototype: mean question vector per topic)",
        f"{len(ev.folds)}-fold CV    top-1 {pct(pooled.top1)}   any listed {pct(pooled.top1_any)}   "
        f"top-2 {pct(pooled.top2)}   over all {len(pooled.outcomes)} questions "
        f"(folds: {', '.join(f'{f.top1 * 100:.1f}' for f in ev.folds)})",
        "",
        "Per-topic recall, held-out (top-1 = primary):",
    ]
    lines += [
        f"  {t:<11} {right:>3}/{asked:<3} {pct(right / max(asked, 1))}" for t, (right, asked) in held.recall().items()
    ]
    lines += ["", "Confusion matrix, held-out (rows: primary topic, columns: top-1):", _matrix(held.confusion())]
    lines += ["", f"Misses, held-out ({len(held.misses())}):"]
    lines += [
        f"  {o.example.primary} -> {o.ranked[0]} ({o.score:.2f})  labelled {'+'.join(o.example.topics)}: "
        f"{o.example.question}"
        for o in held.misses()
    ]
    return lines


def _matrix(confusion: Counter) -> str:
    rows = ["             " + " ".join(f"{SHORT[t]:>4}" for t in TOPICS)]
    for actual in TOPICS:
        cells = (confusion[(actual, p)] for p in TOPICS)
        rows.append(f"  {actual:<11}" + " ".join(f"{c or '.':>4}" for c in cells))
    return "\n".join(rows)
