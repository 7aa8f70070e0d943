"""LLM_FALLBACKS and LLM_FALLBACK_<NAME>_*: parsed once by settings (fortune_project/llm_config.py),
each fallback with a breaker `llm-<name>` that the breaker commands list like any other."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from fortune_project.llm_config import breaker_name, fallback_endpoints
from tests.support.processes import base_env, run_manage


def endpoints(monkeypatch, **env) -> list[dict]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return fallback_endpoints("default-model", 60.0, 2.0)


def test_without_llm_fallbacks_there_are_none(monkeypatch):
    monkeypatch.delenv("LLM_FALLBACKS", raising=False)
    assert fallback_endpoints("m", 60.0, 2.0) == []


def test_fallbacks_keep_their_order_and_take_defaults(monkeypatch, tmp_path):
    key = tmp_path / "key"
    key.write_text("sk-from-file\n")
    found = endpoints(
        monkeypatch,
        LLM_FALLBACKS="Backup, local",
        LLM_FALLBACK_BACKUP_BASE_URL="https://backup.example/v1",
        LLM_FALLBACK_BACKUP_API_KEY_FILE=str(key),
        LLM_FALLBACK_BACKUP_MODEL="gpt-4.1-mini",
        LLM_FALLBACK_BACKUP_TIMEOUT="20",
        LLM_FALLBACK_LOCAL_BASE_URL="http://127.0.0.1:11434/v1",
        LLM_FALLBACK_LOCAL_MIN_TIME="5",
    )
    assert [e["name"] for e in found] == ["backup", "local"]
    assert found[0] == {
        "name": "backup",
        "base_url": "https://backup.example/v1",
        "api_key": "sk-from-file",
        "model": "gpt-4.1-mini",
        "timeout": 20.0,
        "min_time": 2.0,
    }
    assert (found[1]["model"], found[1]["timeout"], found[1]["min_time"]) == ("default-model", 60.0, 5.0)
    assert [breaker_name(e["name"]) for e in found] == ["llm-backup", "llm-local"]


@pytest.mark.parametrize(
    ("names", "message"),
    [("bad-name", "not a usable name"), ("primary", "not a usable name"), ("a,a", "twice"), ("nourl", "neither")],
)
def test_a_bad_fallback_list_stops_start_up(monkeypatch, names, message):
    monkeypatch.setenv("LLM_FALLBACKS", names)
    monkeypatch.setenv("LLM_FALLBACK_A_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ImproperlyConfigured, match=message):
        fallback_endpoints("m", 60.0, 2.0)


def test_the_breaker_commands_list_and_reset_each_fallback(tmp_path):
    env = base_env(
        tmp_path,
        LLM_BASE_URL="http://127.0.0.1:9/v1",
        LLM_FALLBACKS="backup",
        LLM_FALLBACK_BACKUP_BASE_URL="http://127.0.0.1:9/v1",
        BREAKER_LLM_BACKUP_THRESHOLD="2",
    )
    for args in (["migrate", "-v0"], ["createcachetable"]):
        assert run_manage(args, env).returncode == 0
    listed = run_manage(["breakers", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    breakers = {b["name"]: b for b in json.loads(listed.stdout)}
    assert list(breakers) == ["rag", "llm", "chromadb", "llm-backup"]
    assert (breakers["llm-backup"]["failure_threshold"], breakers["llm"]["failure_threshold"]) == (2, 5)
    reset = run_manage(["reset_breakers", "llm", "llm-backup"], env)
    assert reset.returncode == 0, reset.stderr
    assert "llm-backup" in reset.stdout


def test_the_api_lists_and_resets_a_fallback_breaker(as_bob, settings):
    settings.BREAKERS = {**settings.BREAKERS, "llm-backup": dict(settings.BREAKERS["llm"])}
    names = [b["name"] for b in as_bob.get("/api/v1/monitoring/circuit-breakers").json()]
    assert names[-1] == "llm-backup" and "llm" in names
    assert as_bob.post("/api/v1/monitoring/circuit-breakers/llm-backup/force-open").json()["state"] == "forced_open"
    assert as_bob.post("/api/v1/monitoring/circuit-breakers/llm-backup/reset").json()["state"] == "closed"
