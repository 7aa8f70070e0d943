"""The Django admin: fortune tasks (filters, search, cancel, re-run), conversations, poems, and the
operations dashboard page linked from the admin index."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from chat.models import Conversation, FortuneTask, Message

CHANGELIST = "/admin/chat/fortunetask/"


@pytest.fixture
def root(db) -> Client:
    """A superuser's browser session."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="root-pw"))
    return client


@pytest.fixture
def browser_for():
    def login(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return login


def make_task(user, status: str = "queued", question: str = "Will my shop do well?", **fields) -> FortuneTask:
    conversation = fields.pop("conversation", None) or Conversation.objects.create(user=user, title=question[:80])
    now = timezone.now()
    return FortuneTask.objects.create(
        user=user,
        conversation=conversation,
        question=question,
        status=status,
        submitted_at=now,
        deadline=now + timedelta(minutes=2),
        **fields,
    )


def listed(response) -> set[str]:
    return {str(task.id) for task in response.context["cl"].result_list}


def test_the_task_list_filters_by_status_stage_degraded_and_temple(root, alice, temple):
    queued = make_task(alice)
    failed = make_task(alice, "failed", stage="done")
    degraded = make_task(alice, "succeeded", stage="done", degraded=True, temple=temple)
    assert listed(root.get(CHANGELIST, {"status__exact": "failed"})) == {str(failed.id)}
    assert listed(root.get(CHANGELIST, {"stage__exact": "queued"})) == {str(queued.id)}
    assert listed(root.get(CHANGELIST, {"degraded__exact": "1"})) == {str(degraded.id)}
    assert listed(root.get(CHANGELIST, {"temple__id__exact": temple.id})) == {str(degraded.id)}


def test_the_task_list_searches_question_id_and_user(root, alice, mallory):
    shop = make_task(alice, question="Will my shop do well?")
    love = make_task(mallory, question="Does she love me?")
    assert listed(root.get(CHANGELIST, {"q": "shop"})) == {str(shop.id)}
    assert listed(root.get(CHANGELIST, {"q": str(love.id)[:8]})) == {str(love.id)}
    assert listed(root.get(CHANGELIST, {"q": "mallory"})) == {str(love.id)}


def test_a_task_is_read_only(root, alice):
    task = make_task(alice)
    page = root.get(f"{CHANGELIST}{task.id}/change/")
    assert page.status_code == 200
    root.post(f"{CHANGELIST}{task.id}/change/", {"question": "changed", "status": "succeeded"})
    task.refresh_from_db()
    assert (task.question, task.status) == ("Will my shop do well?", "queued")
    assert root.get(f"{CHANGELIST}add/").status_code == 403


def test_cancel_ends_active_tasks_and_leaves_finished_ones(root, alice):
    queued, done = make_task(alice), make_task(alice, "succeeded", stage="done")
    response = root.post(CHANGELIST, {"action": "cancel_tasks", "_selected_action": [queued.id, done.id]}, follow=True)
    assert "Cancelled 1 task(s); 1 had already ended." in response.content.decode()
    queued.refresh_from_db(), done.refresh_from_db()
    assert (queued.status, done.status) == ("cancelled", "succeeded")


def test_rerun_asks_the_same_question_again_as_a_new_task(root, alice, poem):
    old = make_task(alice, "failed", stage="done", temple=poem.temple, poem=poem, language="ja")
    response = root.post(CHANGELIST, {"action": "rerun_tasks", "_selected_action": [old.id]}, follow=True)
    assert "Submitted 1 new task(s)." in response.content.decode()
    new = FortuneTask.objects.exclude(id=old.id).get()
    assert (new.user, new.question, new.temple, new.poem, new.language, new.conversation) == (
        old.user,
        old.question,
        old.temple,
        old.poem,
        old.language,
        old.conversation,
    )
    assert new.status == "queued"
    assert Message.objects.filter(task=new, role="user").exists()


def test_rerun_stops_when_the_queue_is_full(root, alice, settings):
    settings.MAX_QUEUED_TASKS = 1
    old = make_task(alice)  # already one queued: the backlog is at its limit
    response = root.post(CHANGELIST, {"action": "rerun_tasks", "_selected_action": [old.id]}, follow=True)
    assert "Stopped after 0 new task(s)" in response.content.decode()
    assert FortuneTask.objects.count() == 1


def test_conversation_message_temple_and_poem_pages_render(root, alice, poem):
    task = make_task(alice)
    Message.objects.create(conversation=task.conversation, role="user", content="hello", task=task)
    for page in (
        "/admin/chat/conversation/",
        f"/admin/chat/conversation/{task.conversation_id}/change/",
        "/admin/chat/message/",
        "/admin/rag/temple/",
        "/admin/rag/poem/",
        f"/admin/rag/poem/{poem.id}/change/",
    ):
        assert root.get(page).status_code == 200, page
    assert root.get("/admin/rag/poem/", {"q": "Lantern"}).context["cl"].result_count == 1


# --- The operations page ---------------------------------------------------------------------------


def test_the_admin_index_links_to_the_operations_dashboard(browser_for, bob):
    page = browser_for(bob).get("/admin/").content.decode()
    assert 'href="/admin/operations/"' in page and 'href="/monitoring/live/"' in page


def test_the_operations_dashboard_shows_the_snapshot_to_staff(browser_for, bob, alice):
    make_task(alice, question="Will the harvest be good?")
    response = browser_for(bob).get("/admin/operations/")
    assert response.status_code == 200
    page = response.content.decode()
    for part in ("No live task cluster", "Circuit breakers", "chromadb", "Will the harvest be good?", "no_workers"):
        assert part in page, part
    assert 'href="/admin/django_q/failure/"' in page and 'href="/admin/django_q/success/"' in page
    assert response.context["snapshot"]["workers"]["max_workers"] == 3


@pytest.mark.parametrize("who", ["alice", "anonymous"])
def test_the_operations_dashboard_sends_others_to_the_login_page(request, browser_for, who):
    client = Client() if who == "anonymous" else browser_for(request.getfixturevalue(who))
    response = client.get("/admin/operations/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_live_page_is_for_staff_only(browser_for, bob, alice):
    assert browser_for(bob).get("/monitoring/live/").status_code == 200
    assert browser_for(alice).get("/monitoring/live/")["Location"].startswith("/admin/login/")
    assert Client().get("/monitoring/live/")["Location"].startswith("/admin/login/")
