"""A second `manage.py fake_llm` on its own port: the fallback endpoint `backup` (LLM_FALLBACKS).

Use the `fake_backup` fixture together with `fake_llm` (tests.support.fake_llm): the primary is
the first server, `backup` the second, each with its breaker (`llm`, `llm-backup`), both in mode
ok with their call counts reset.
"""

import pytest

from tests.support.fake_llm import FakeLLM
from tests.support.processes import base_env, free_port, manage, port_open, wait_until

BACKUP_MODEL = "fake-backup"


def start_fake_llm(tmp, name: str) -> FakeLLM:
    port = free_port()
    process = manage(["fake_llm", "--port", str(port), "--mode", "ok"], base_env(tmp), tmp / f"{name}.log")
    wait_until(lambda: port_open(port) or process.popen.poll() is not None, 30, what=f"{name} to listen")
    assert process.popen.poll() is None, process.log()
    return FakeLLM(port, process)


@pytest.fixture(scope="session")
def fake_backup_server(tmp_path_factory) -> FakeLLM:
    server = start_fake_llm(tmp_path_factory.mktemp("fake_backup"), "fake_backup")
    try:
        yield server
    finally:
        server.process.stop()


def backup_endpoint(base_url: str, **changes) -> dict:
    """settings.LLM_FALLBACKS' entry for `backup`, as fortune_project/llm_config.py builds it."""
    return {
        "name": "backup",
        "base_url": base_url,
        "api_key": "",
        "model": BACKUP_MODEL,
        "timeout": 2.0,
        "min_time": 0.5,
    } | changes


@pytest.fixture
def fake_backup(fake_llm: FakeLLM, fake_backup_server: FakeLLM, settings) -> FakeLLM:
    """The fallback `backup` in mode ok, counts reset, after the primary (`fake_llm`)."""
    fake_backup_server.control(mode="ok", latency=1.0, chunk_delay=0.02, embeddings_mode="ok", reset=True)
    settings.LLM_FALLBACKS = [backup_endpoint(fake_backup_server.base_url)]
    settings.BREAKERS = {**settings.BREAKERS, "llm-backup": dict(settings.BREAKERS["llm"])}
    return fake_backup_server
