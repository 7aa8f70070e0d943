"""The settings module, evaluated in a fresh interpreter for each environment."""

import json
import subprocess
import sys

from tests.support.processes import ROOT

KEY = "tests-only-" + "k" * 50
SHOW = (
    "import json; from django.conf import settings as s;"
    "print(json.dumps({'db': s.DATABASES['default'].get('OPTIONS', {}), 'cache': s.CACHES['default']}))"
)


def start(code: str = "", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "fortune_project.settings", "SECRET_KEY": KEY, "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_postgresql_and_redis_connections_are_bounded_by_connect_timeout():
    done = start(
        SHOW,
        DATABASE_URL="postgres://fortune@127.0.0.1:5432/fortune",
        REDIS_URL="redis://127.0.0.1:6379/0",
        CONNECT_TIMEOUT="3",
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["db"]["connect_timeout"] == 3
    assert found["cache"]["OPTIONS"] == {"socket_connect_timeout": 3, "socket_timeout": 3}


def test_a_malformed_setting_stops_start_up_naming_it():
    done = start(SUBMIT_RATE="lots")
    assert done.returncode != 0
    assert "SUBMIT_RATE='lots'" in done.stderr
