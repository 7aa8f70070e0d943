"""manage.py breakers and manage.py reset_breakers: in-process with call_command, and as real processes."""

import json
from io import StringIO
from uuid import uuid4

import pytest
from django.core.management import CommandError, call_command

from fortune_project.resilience.breakers import get_breaker
from fortune_project.resilience.models import BreakerEvent
from monitoring.management.commands.reset_breakers import command_actor
from tests.support.breaker_procs import shared_store
from tests.support.processes import base_env, run_manage


@pytest.fixture(autouse=True)
def fresh_breakers(settings, db):
    settings.BREAKER_KEY_PREFIX = f"test-{uuid4().hex[:8]}"


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_breakers_prints_a_table_of_every_breaker():
    get_breaker("llm").force_open(who="test")

    lines = run("breakers").splitlines()

    assert lines[0].split()[:3] == ["NAME", "STATE", "FAILURES"]
    states = [line.split()[:2] for line in lines[1:]]
    assert states == [["rag", "closed"], ["llm", "forced_open"], ["chromadb", "closed"]]
    assert "60 s" in lines[2]


def test_breakers_json_gives_the_full_snapshots():
    snapshots = json.loads(run("breakers", "--json"))

    assert [s["name"] for s in snapshots] == ["rag", "llm", "chromadb"]
    assert snapshots[0]["recovery_timeout"] == 30_000


def test_reset_breakers_closes_the_named_breaker_and_records_the_unix_user():
    get_breaker("llm").force_open(who="test")

    output = run("reset_breakers", "llm")

    assert output.splitlines()[1].split()[:2] == ["llm", "closed"]
    assert get_breaker("llm").state() == "closed"
    event = BreakerEvent.objects.filter(name="llm").latest("id")
    assert (event.to_state, event.who) == ("closed", command_actor())
    assert event.who.startswith("manage.py (")


def test_reset_breakers_all_closes_every_breaker():
    for name in ("rag", "llm", "chromadb"):
        get_breaker(name).force_open(who="test")

    run("reset_breakers", "--all")

    assert {get_breaker(name).state() for name in ("rag", "llm", "chromadb")} == {"closed"}


def test_an_unknown_name_resets_nothing_even_the_known_ones():
    get_breaker("llm").force_open(who="test")

    with pytest.raises(CommandError, match=r"unknown breaker\(s\): nope \(known: rag, llm, chromadb\)"):
        run("reset_breakers", "llm", "nope")

    assert get_breaker("llm").state() == "forced_open"


@pytest.mark.parametrize("args", [[], ["llm", "--all"]])
def test_it_wants_names_or_all_but_not_both(args):
    with pytest.raises(CommandError, match="name the breakers to reset, or pass --all"):
        run("reset_breakers", *args)


@pytest.mark.slow
def test_an_unknown_name_exits_non_zero_with_a_message_on_stderr(tmp_path):
    done = run_manage(["reset_breakers", "nope"], base_env(tmp_path))

    assert done.returncode == 1
    assert "unknown breaker(s): nope (known: rag, llm, chromadb)" in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_both_commands_exit_zero_as_real_processes(tmp_path_factory):
    env = base_env(shared_store(tmp_path_factory), BREAKER_KEY_PREFIX=f"cmd-{uuid4().hex[:8]}")

    listing = run_manage(["breakers"], env)
    reset = run_manage(["reset_breakers", "--all"], env)

    assert (listing.returncode, reset.returncode) == (0, 0), listing.stderr + reset.stderr
    assert "llm" in listing.stdout
    assert [line.split()[1] for line in reset.stdout.splitlines()[1:]] == ["closed"] * 3
