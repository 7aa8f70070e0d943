"""`manage.py fake_llm` as a real subprocess on a free port, and a handle to switch its mode.

Use the `fake_llm` fixture (import it into a test module or conftest): the server starts once
per session, and each test gets it back in mode "ok" with its call counts reset, with
LLM_BASE_URL pointing at it and short LLM timeouts.
"""

import json
import urllib.request
from dataclasses import dataclass

import pytest

from tests.support.processes import Process, base_env, free_port, manage, port_open, wait_until


@dataclass
class FakeLLM:
    port: int
    process: Process

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def control(self, **changes) -> dict:
        """POST /control with the changes (mode, latency, chunk_delay, embeddings_mode, reset)."""
        data = json.dumps(changes).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/control", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def set_mode(self, mode: str, **options) -> dict:
        return self.control(mode=mode, **options)

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/control", timeout=5) as response:
            return json.load(response)

    def calls(self, name: str = "chat_stream") -> int:
        return self.stats()["calls"].get(name, 0)


@pytest.fixture(scope="session")
def fake_llm_server(tmp_path_factory) -> FakeLLM:
    tmp = tmp_path_factory.mktemp("fake_llm")
    port = free_port()
    process = manage(["fake_llm", "--port", str(port), "--mode", "ok"], base_env(tmp), tmp / "fake_llm.log")
    try:
        wait_until(lambda: port_open(port) or process.popen.poll() is not None, 30, what="fake_llm to listen")
        assert process.popen.poll() is None, process.log()
        yield FakeLLM(port, process)
    finally:
        process.stop()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM, settings) -> FakeLLM:
    """The fake server in mode ok, counts reset, and the LLM settings pointing at it."""
    fake_llm_server.control(mode="ok", latency=1.0, chunk_delay=0.02, embeddings_mode="ok", reset=True)
    settings.LLM_BASE_URL = fake_llm_server.base_url
    settings.OPENAI_API_KEY = ""
    settings.LLM_MODEL = "fake-llm"
    settings.LLM_TIMEOUT = 2.0
    settings.LLM_CHUNK_TIMEOUT = 1.0
    settings.LLM_MAX_CHARS = 4000
    return fake_llm_server
