"""The admission limits hold when submits race, on the file SQLite and on PostgreSQL.

32 submits arrive at once, each on its own database connection (tests/support/admission.py runs
them in a child process): the checks and the insert share one transaction behind the submit gate,
so exactly one gets the last place and the others are refused with the right code.
"""

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.support.processes import base_env, run_manage
from tests.support.services import scratch_postgres

RACE = "from tests.support.admission import main; main()"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def races(request, tmp_path_factory) -> Iterator[dict[str, Counter]]:
    """Both races on one fresh database of each engine: {race: Counter((status, code))}."""
    tmp_path = tmp_path_factory.mktemp(f"race-{request.param}")
    if request.param == "sqlite":
        yield run_races(base_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'race.sqlite3'}"))
    else:
        with scratch_postgres() as url:  # skips, saying why, when PostgreSQL is not reachable
            yield run_races(base_env(tmp_path, DATABASE_URL=url))


def run_races(env: dict[str, str]) -> dict[str, Counter]:
    done = run_manage(["shell", "-c", RACE], env)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT="))
    return {name: Counter(map(tuple, outcomes)) for name, outcomes in json.loads(line[7:]).items()}


def test_with_the_backlog_one_short_exactly_one_of_32_racing_submits_is_accepted(races):
    assert races["backlog"] == Counter({(202, None): 1, (503, "overloaded"): 31})


def test_with_alice_one_short_of_her_cap_exactly_one_of_her_32_racing_submits_is_accepted(races):
    assert races["user_cap"] == Counter({(202, None): 1, (429, "too_many_active_tasks"): 31})
