"""The live operations page in headless Chromium against real processes: the web server, a task
cluster and the fake LLM in slow mode. Screenshots go to artifacts/."""

import time

import pytest

from tests.support import cluster as c
from tests.support.browser import admin_login, chromium_page, needs_browser, screenshot, watch_csp
from tests.support.fake_llm import fake_llm_server  # noqa: F401  (fixture)
from tests.support.processes import base_env, free_port, manage, port_open, run_manage, wait_until

pytestmark = [pytest.mark.slow, needs_browser]

STAFF = "from django.contrib.auth.models import User; User.objects.create_user('bob', password='bob-pw', is_staff=True)"
FORCE_OPEN = (
    "from fortune_project.resilience.breakers import get_breaker; "
    "get_breaker('rag').force_open(who='ops drill (shell)')"
)


@pytest.fixture
def site(tmp_path, fake_llm_server):  # noqa: F811
    """(base URL, env): `manage.py serve`, as bin/up starts it (Daphne with WhiteNoise's static
    files, a 3-worker cluster, the sweeper), over one embedded database with the test poems."""
    fake_llm_server.control(mode="slow", latency=0.3, reset=True)
    env = base_env(
        tmp_path, LLM_BASE_URL=fake_llm_server.base_url, LLM_TIMEOUT="20", TASK_TIMEOUT="30", OPS_FIGURES_TTL="1"
    )
    c.prepare(env, tmp_path)
    assert run_manage(["shell", "-c", STAFF], env).returncode == 0
    port = free_port()
    server = manage(["serve", "--port", str(port), "--no-sample-poems"], env, tmp_path / "serve.log")
    try:
        wait_until(lambda: port_open(port), 90, what=f"the web server\n{server.log_path}")
        wait_until(lambda: len(c.worker_pids(env)) == 3, 60, interval=0.5, what="3 workers")
        yield f"http://127.0.0.1:{port}", env
    finally:
        server.stop()
        fake_llm_server.control(mode="ok", reset=True)


def tiles(page, state: str) -> int:
    return page.locator(f".tile[data-state={state}]").count()


def breaker_state(page, name: str) -> str | None:
    return page.get_attribute(f"tr[data-breaker={name}]", "data-state")


def test_the_live_page_follows_workers_and_breakers(site):
    base, env = site
    with chromium_page() as page:
        refused = watch_csp(page)
        admin_login(page, base, "bob", "bob-pw", "/monitoring/live/")
        page.wait_for_selector("#conn.live")
        wait_until(lambda: tiles(page, "idle") == 3, 15, what="three idle worker tiles")

        c.submit(env, 2, question="Will the new shop do well?")
        wait_until(lambda: tiles(page, "busy") >= 1, 20, what="a busy worker tile")
        screenshot(page, "live-busy")
        wait_until(lambda: tiles(page, "busy") == 0 and tiles(page, "idle") == 3, 40, what="the workers idle again")
        assert page.locator("#task-rows tr").count() == 2
        wait_until(lambda: page.locator("#chart rect").count() >= 1, 5, what="the chart's throughput bar")

        page.click("tr[data-breaker=llm] button[data-action=force-open]")
        wait_until(lambda: breaker_state(page, "llm") == "forced_open", 5, what="llm forced open on the page")
        page.wait_for_selector("#alert-list tr[data-code=breaker_open]")

        assert run_manage(["shell", "-c", FORCE_OPEN], env).returncode == 0  # another process
        seen = time.monotonic()
        wait_until(lambda: breaker_state(page, "rag") == "forced_open", 5, what="rag forced open elsewhere")
        assert time.monotonic() - seen < 1.5
        screenshot(page, "live-breakers")

        page.click("tr[data-breaker=llm] button[data-action=reset]")
        wait_until(lambda: breaker_state(page, "llm") == "closed", 5, what="llm closed again")

        page.goto(f"{base}/admin/operations/")
        assert page.locator("#ops-breakers").is_visible()
        screenshot(page, "admin-operations")
        page.goto(f"{base}/admin/")
        assert page.locator("#operations-module").is_visible()
        screenshot(page, "admin-index")
        assert refused == []  # the live page's script, styles and socket all pass the CSP
