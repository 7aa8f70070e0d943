"""Drawing a poem: weighted random within a temple, as the fortune sticks would fall."""

import random

from rag.models import Poem, Temple


class NoPoems(Exception):
    """There is no poem to draw (none loaded, or none in that temple)."""


def draw_poem(temple: Temple | None = None, rng: random.Random | None = None) -> Poem:
    poems = Poem.objects.all()
    if temple is not None:
        poems = poems.filter(temple=temple)
    choices = list(poems.only("id", "weight"))
    if not choices:
        raise NoPoems("no poems are loaded" + (f" for temple {temple.slug}" if temple else ""))
    picked = (rng or random).choices(choices, weights=[p.weight or 1 for p in choices], k=1)[0]
    return Poem.objects.select_related("temple").get(id=picked.id)
