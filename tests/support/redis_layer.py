"""The `redis_layer` fixture: a private redis-server and the channel layer on it (the project's
Redis mode). Load it with `pytest_plugins = ["tests.support.redis_layer"]`."""

import os
import shutil

import pytest

from tests.support.processes import Process, free_port, port_open, wait_until


@pytest.fixture
def redis_layer(tmp_path, settings):
    """A private redis-server, and the channel layer on it (the project's Redis mode)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = Process(args, dict(os.environ), tmp_path / "redis.log")
    try:
        wait_until(lambda: port_open(port), 10, what="redis-server")
        # socket_timeout above channels_redis's 5 s BZPOPMIN, or redis-py 8's default 5 s kills idle sockets
        hosts = [{"address": f"redis://127.0.0.1:{port}/0", "socket_timeout": 10}]
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": hosts}}
        }
        yield
    finally:
        server.stop()
