"""SECRET_KEY: never a built-in one. Without it, start-up refuses, except `serve` (bin/up) and
DEBUG mode, which make a private random key in FORTUNE_VAR_DIR once and reuse it."""

import os
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from fortune_project import secret_key
from tests.support.processes import base_env, run_manage

SHOW_KEY = "from django.conf import settings; print('KEY=' + settings.SECRET_KEY)"


def without_key(tmp_path, **extra: str) -> dict[str, str]:
    env = base_env(tmp_path, **extra)
    del env["SECRET_KEY"]
    return env


def key_of(done) -> str:
    assert done.returncode == 0, done.stderr
    return next(line[4:] for line in done.stdout.splitlines() if line.startswith("KEY="))


def test_without_a_secret_key_start_up_refuses_saying_how_to_give_one(tmp_path):
    done = run_manage(["check"], without_key(tmp_path))
    assert done.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set and DEBUG is off" in done.stderr
    assert not (tmp_path / "secret_key").exists()


def test_debug_mode_makes_a_private_key_once_and_reuses_it(tmp_path):
    env = without_key(tmp_path, DEBUG="1")
    first = key_of(run_manage(["shell", "-c", SHOW_KEY], env))
    assert key_of(run_manage(["shell", "-c", SHOW_KEY], env)) == first
    assert len(first) >= 50
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_a_key_that_serve_made_is_used_by_later_commands_of_the_checkout(tmp_path):
    made = secret_key.create_key_file(tmp_path).read_text().strip()
    assert key_of(run_manage(["shell", "-c", SHOW_KEY], without_key(tmp_path))) == made


def test_a_given_key_wins_over_the_generated_one(tmp_path):
    secret_key.create_key_file(tmp_path)
    assert key_of(run_manage(["shell", "-c", SHOW_KEY], base_env(tmp_path, SECRET_KEY="given-" + "k" * 50))) == (
        "given-" + "k" * 50
    )


@pytest.fixture
def no_key_in_env(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("FORTUNE_VAR_DIR", str(tmp_path))


def test_serve_hands_its_children_the_key_file_it_made(tmp_path, no_key_in_env):
    secret_key.provide_for_serve()
    path = tmp_path / "secret_key"
    assert os.environ["SECRET_KEY_FILE"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    made = path.read_text()

    del os.environ["SECRET_KEY_FILE"]  # the next start of serve
    secret_key.provide_for_serve()
    assert path.read_text() == made
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left behind


def test_serve_leaves_a_given_key_alone(tmp_path, no_key_in_env, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "given-" + "k" * 50)
    secret_key.provide_for_serve()
    assert "SECRET_KEY_FILE" not in os.environ
    assert not (tmp_path / "secret_key").exists()


def test_a_key_file_other_users_can_read_is_refused(tmp_path):
    path = secret_key.create_key_file(tmp_path)
    path.chmod(0o644)
    with pytest.raises(ImproperlyConfigured, match="chmod 600"):
        secret_key.read_key_file(path)
