import pytest
from django.core.exceptions import ImproperlyConfigured

from fortune_project.env import envbool, envchoice, envint, envlist, envrate, envstr


def test_it_reads_typed_values(monkeypatch):
    monkeypatch.setenv("X_INT", "7")
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert envint("X_INT", 1) == 7
    assert envbool("X_BOOL", False) is True
    assert envlist("X_LIST") == ["a", "b", "c"]
    assert envint("X_UNSET", 3) == 3
    monkeypatch.setenv("X_RATE", "5/hour")
    assert envrate("X_RATE", "60/min") == "5/hour"


@pytest.mark.parametrize(
    "reader, raw",
    [
        (lambda: envint("X", 1), "seven"),
        (lambda: envint("X", 1, minimum=1), "0"),
        (lambda: envbool("X", False), "maybe"),
        (lambda: envchoice("X", "a", ("a", "b")), "c"),
        (lambda: envrate("X", "60/min"), "sixty"),
        (lambda: envrate("X", "60/min"), "60/fortnight"),
        (lambda: envrate("X", "60/min"), "0/min"),
        (lambda: envrate("X", "60/min"), "60/ms"),
    ],
)
def test_it_fails_loudly_on_a_bad_value(monkeypatch, reader, raw):
    monkeypatch.setenv("X", raw)
    with pytest.raises(ImproperlyConfigured, match="X="):
        reader()


def test_a_secret_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_FILE", str(secret))
    assert envstr("X") == "s3cret"


def test_bad_settings_stop_manage_py_with_a_clear_message(tmp_path):
    from tests.support.processes import base_env, run_manage

    done = run_manage(["check"], base_env(tmp_path, TASK_TIMEOUT="soon"))
    assert done.returncode != 0
    assert "TASK_TIMEOUT='soon' is not a whole number" in done.stderr
