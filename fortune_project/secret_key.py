"""Where Django's SECRET_KEY comes from. There is no built-in default.

Django-Q2 signs the pickled task packages it puts on the broker with SECRET_KEY: with a known
key, anyone who can write to the broker runs code in the workers. So `SECRET_KEY` (or
`SECRET_KEY_FILE`) wins; without it the key kept in `$FORTUNE_VAR_DIR/secret_key` is used if
that file exists, and anything else refuses to start. Only `manage.py serve` (so `bin/up`) and
DEBUG mode create that file: random, readable by its owner only, made once and then reused, so
a fresh checkout still starts with nothing set and every process of it shares one key.
"""

import os
import secrets
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from fortune_project.env import envstr

BASE_DIR = Path(__file__).resolve().parent.parent
KEY_FILE = "secret_key"
MISSING = (
    "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY (or SECRET_KEY_FILE, a file holding it) "
    "to a long random value shared by every process of the deployment, e.g. "
    "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`. "
    "`manage.py serve` (bin/up) instead keeps a generated one in {path}."
)


def var_dir() -> Path:
    """FORTUNE_VAR_DIR: the SQLite file, the embedded Chroma store and the generated key."""
    return Path(envstr("FORTUNE_VAR_DIR", str(BASE_DIR / "var")))


def read_key_file(path: Path) -> str | None:
    """The key in `path`, or None when there is no such file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ImproperlyConfigured(f"{path} is readable by other users: `chmod 600 {path}` (or delete it)")
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it and a new key is made")
    return key


def create_key_file(directory: Path) -> Path:
    """Make `directory/secret_key` unless it exists. Written under a temporary name and linked
    into place, so two processes starting at once never see a half-written file and agree on
    the one that won."""
    path = directory / KEY_FILE
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(50) + "\n")
        os.link(partial, path)
    except FileExistsError:
        pass  # another process won; use its key
    finally:
        partial.unlink(missing_ok=True)
    return path


def secret_key(debug: bool, directory: Path) -> str:
    """The settings' SECRET_KEY, or ImproperlyConfigured saying how to give one."""
    given = envstr("SECRET_KEY").strip()
    if given:
        return given
    path = directory / KEY_FILE
    if debug:
        create_key_file(directory)
    key = read_key_file(path)
    if key is None:
        raise ImproperlyConfigured(MISSING.format(path=path))
    return key


def provide_for_serve() -> None:
    """Before `serve` loads the settings: make (or reuse) the generated key and name it in the
    environment, which the web, worker and sweeper processes inherit."""
    if os.environ.get("SECRET_KEY", "").strip() or os.environ.get("SECRET_KEY_FILE"):
        return
    os.environ["SECRET_KEY_FILE"] = str(create_key_file(var_dir()))
