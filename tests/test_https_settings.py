"""The HTTPS settings come from documented variables, and a production environment passes
`manage.py check --deploy --fail-level WARNING`."""

import json
import secrets

from tests.support.processes import base_env, run_manage

PRODUCTION = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "fortune.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://fortune.example.com",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto,https",
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}
SHOW = (
    "import json; from django.conf import settings as s; print('S=' + json.dumps([s.SECURE_PROXY_SSL_HEADER, "
    "s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
    "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD]))"
)


def strong_key() -> str:
    return secrets.token_urlsafe(50)


def test_a_production_environment_passes_check_deploy(tmp_path):
    env = base_env(tmp_path, SECRET_KEY=strong_key(), **PRODUCTION)
    done = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_without_the_https_variables_check_deploy_names_each_one(tmp_path):
    env = base_env(tmp_path, SECRET_KEY=strong_key(), DEBUG="0")
    done = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env, timeout=300)
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr
    assert "security.W009" not in done.stderr  # the key is strong


def test_the_variables_become_the_settings(tmp_path):
    done = run_manage(["shell", "-c", SHOW], base_env(tmp_path, **PRODUCTION))
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("S="))
    assert json.loads(line[2:]) == [["HTTP_X_FORWARDED_PROTO", "https"], True, True, True, 31536000, True, True]


def test_all_are_off_by_default_for_a_local_http_install(tmp_path):
    done = run_manage(["shell", "-c", SHOW], base_env(tmp_path))
    line = next(x for x in done.stdout.splitlines() if x.startswith("S="))
    assert json.loads(line[2:]) == [None, False, False, False, 0, False, False]


def test_a_malformed_proxy_header_stops_start_up_naming_it(tmp_path):
    done = run_manage(["check"], base_env(tmp_path, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"))
    assert done.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be a header and its value" in done.stderr
