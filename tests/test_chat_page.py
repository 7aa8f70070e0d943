"""The /chat/ demo page: session login, then only the public API and the task WebSocket."""

import pytest
from django.test import Client

from monitoring.drills.fake_llm import READING
from tests.support.browser import admin_login, chromium_page, needs_browser, screenshot, watch_csp
from tests.support.processes import base_env, free_port, manage, port_open, run_manage, wait_until

pytest_plugins = ["tests.support.fake_llm"]  # the fake_llm_server fixture

MAKE_STAFF = (
    "from django.contrib.auth.models import User; User.objects.create_user('bob', password='bob-pw', is_staff=True)"
)
READING_JS = "(document.querySelector('.entry .reading')?.textContent ?? '')"
STATUS_JS = "document.querySelector('.entry')?.dataset.status"


def test_it_sends_anonymous_visitors_to_the_login_page(db):
    response = Client().get("/chat/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/chat/"


def test_it_renders_the_chat_page_for_a_logged_in_user(alice):
    client = Client()
    client.force_login(alice)
    response = client.get("/chat/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<meta name="csrf-token" content="' in page
    assert 'const API = "/api/v1/async-chat/tasks"' in page
    assert "submitted.links.websocket" in page
    for code in ("en", "zh", "ja"):
        assert f'<option value="{code}">' in page


def test_the_page_posts_with_the_csrf_header_the_api_expects(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get("/chat/").content.decode()
    token = page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/api/v1/async-chat/tasks",
        {"question": "Will my new shop do well?"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 202


@pytest.mark.slow
@needs_browser
def test_a_browser_watches_the_reading_grow_before_the_task_ends(tmp_path, fake_llm_server):
    """Through `manage.py serve` (Daphne, 3 workers) and fake_llm in slow mode, in Chromium."""
    fake_llm_server.control(mode="slow", latency=0.4, reset=True)
    port = free_port()
    env = base_env(tmp_path, LLM_BASE_URL=fake_llm_server.base_url, LLM_MODEL="fake-llm", LLM_TIMEOUT="30")
    server = manage(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        # serve migrates, collects static files and loads and indexes 120 sample poems first.
        wait_until(lambda: port_open(port), 180, what=f"the web server\n{server.log_path}")
        assert run_manage(["shell", "-c", MAKE_STAFF], env).returncode == 0
        base = f"http://127.0.0.1:{port}"
        with chromium_page(width=1000, height=900) as page:
            refused = watch_csp(page)
            admin_login(page, base, "bob", "bob-pw", "/chat/")
            page.fill("#question", "Will my new shop do well?")
            page.click("#ask")
            page.wait_for_function(f"() => {READING_JS}.length > 0 && {STATUS_JS} === 'running'", timeout=60_000)
            first = page.evaluate(f"() => {READING_JS}.length")
            page.wait_for_function(f"() => {READING_JS}.length > {first} && {STATUS_JS} === 'running'", timeout=10_000)
            screenshot(page, "chat_streaming")
            page.wait_for_function(f"() => {STATUS_JS} === 'succeeded'", timeout=60_000)
            assert page.evaluate(f"() => {READING_JS}") == READING
            assert page.locator(".entry .poem .title").inner_text()
            screenshot(page, "chat_done")
            assert refused == []  # the page's script, styles and task socket all pass the CSP
    finally:
        server.stop()
