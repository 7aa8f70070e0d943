"""The web server loads at start-up what its first requests would load, so that it is frozen with
the rest of start-up (fortune_project/webserver.py) and no full garbage collection walks it."""

import subprocess
import sys
from pathlib import Path

from tests.support.processes import base_env

START_UP = """
import sys
from fortune_project import webserver
webserver._serving = {serving}
import django
django.setup()
{then}
print({loaded})
"""


def loaded_at_start_up(tmp_path: Path, loaded: str, *, serving: bool = True, then: str = "") -> bool:
    """Whether `loaded` (an expression) holds once a process has started as described."""
    env = base_env(tmp_path, WEB_EMBEDDINGS_PROCESS="false")  # no embedding child: nothing is served
    script = START_UP.format(serving=serving, then=then, loaded=loaded)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1] == "True"


def test_the_web_server_imports_chromadb_before_its_first_search(tmp_path):
    assert loaded_at_start_up(tmp_path, '"chromadb" in sys.modules')


def test_workers_and_commands_leave_chromadb_until_they_use_it(tmp_path):
    assert not loaded_at_start_up(tmp_path, '"chromadb" in sys.modules', serving=False)


def test_the_web_server_imports_its_url_conf_and_views_before_the_first_request(tmp_path):
    views = '"fortune_project.urls" in sys.modules and "chat.views" in sys.modules'
    assert not loaded_at_start_up(tmp_path, views)
    assert loaded_at_start_up(tmp_path, views, then="webserver.load_what_requests_import()")
