"""The README's questions, asked on /chat/ in Chromium with no LLM configured, are answered on
their own topic: the offline reader speaks to work and to love, never to "what was lost"."""

import pytest

from tests.support.browser import chromium_page, needs_browser, screenshot
from tests.support.processes import base_env, free_port, manage, port_open, run_manage, wait_until

pytestmark = [pytest.mark.slow, needs_browser]

MAKE_USER = "from django.contrib.auth.models import User; User.objects.create_user('alice', password='alice-pw')"
QUESTIONS = [
    ("Will my new shop do well?", "On work: "),
    ("She left me last month. Will she come back?", "On love: "),
]


def entry_js(question: str, part: str) -> str:
    """JS for the thread entry that asked `question`: its reading text or its status."""
    pick = (
        f"[...document.querySelectorAll('.entry')].find(e => e.querySelector('.question').textContent === {question!r})"
    )
    if part == "status":
        return f"({pick})?.dataset.status"
    return f"(({pick})?.querySelector('.reading')?.textContent ?? '')"


def test_the_readmes_questions_are_answered_on_career_and_love_without_an_llm(tmp_path):
    """Through `manage.py serve` (Daphne, 3 workers, the sample corpus indexed), as a user would."""
    port = free_port()
    env = base_env(tmp_path, TASK_TIMEOUT="120")  # base_env leaves no LLM configured
    server = manage(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_until(lambda: port_open(port), 180, what=f"the web server\n{server.log_path}")
        assert run_manage(["shell", "-c", MAKE_USER], env).returncode == 0
        base = f"http://127.0.0.1:{port}"
        with chromium_page(width=1000, height=1100) as page:
            sign_in(page, base)
            for question, answer in QUESTIONS:
                page.fill("#question", question)
                page.click("#ask")
                page.wait_for_function(f"() => {entry_js(question, 'status')} === 'succeeded'", timeout=120_000)
                reading = page.evaluate(f"() => {entry_js(question, 'reading')}")
                assert answer in reading, reading
                assert "On what was lost" not in reading, reading
            assert "A simpler reading was used (llm_unconfigured" in page.locator(".entry .degraded").first.inner_text()
            screenshot(page, "chat_topics")
    finally:
        server.stop()


def sign_in(page, base: str) -> None:
    """The site's own login page (alice is no staff member, so not the admin's)."""
    page.goto(f"{base}/accounts/login/?next=/chat/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-pw")
    page.click("[type=submit]")
    page.wait_for_url(f"{base}/chat/")
