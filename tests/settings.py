"""Settings for the test suite and the type checker: the real settings, with a key of their own.

Production refuses to start without SECRET_KEY (fortune_project/secret_key.py), so the tests
name one here, explicitly; child processes get theirs from tests.support.processes.base_env.
"""

import os

TEST_SECRET_KEY = "tests-only-" + "k" * 50  # long enough for check --deploy; never used outside tests
os.environ.setdefault("SECRET_KEY", TEST_SECRET_KEY)

from fortune_project.settings import *  # noqa: E402, F403

# Pages rendered by the test client must not need `collectstatic`'s manifest; the browser tests
# run `manage.py serve`, which collects the real thing.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# WhiteNoise finds static files in the apps at each request, as under DEBUG: no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Public health probes on each request, so a test sees the state it just set up (the snapshot
# refresher has tests of its own: tests/test_public_health.py).
HEALTH_SNAPSHOT_INTERVAL = 0

# The test database is SQLite in memory with a shared cache, where a write meets a concurrent
# read of the same table with "database table is locked" at once (no busy wait): a socket
# consumer polling a task while a worker thread updates it failed tests under load. Readers
# that take no table locks (read_uncommitted, which only shared-cache connections honour)
# remove that test-only race; file databases and PostgreSQL are unaffected.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    _options = DATABASES["default"]["OPTIONS"]  # noqa: F405
    _options["init_command"] = _options["init_command"].rstrip() + " PRAGMA read_uncommitted=1;"
