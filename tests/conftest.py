import socket
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from django_q.status import Stat
from rest_framework.test import APIClient

from chat.auth import issue_token
from rag.models import TOPICS, Poem, Temple


@pytest.fixture(autouse=True, scope="session")
def _test_chroma_store(tmp_path_factory):
    """Tests never touch the checkout's var/chroma; tests needing a store of their own ask for
    tests.support.chroma's fixtures, which override this one."""
    from django.test import override_settings

    with override_settings(CHROMA_PATH=str(tmp_path_factory.mktemp("chroma-session")), CHROMA_URL=""):
        yield


@pytest.fixture
def alice(db) -> User:
    """The seeker."""
    return User.objects.create_user("alice", password="alice-pw")


@pytest.fixture
def mallory(db) -> User:
    """Must see nothing of alice's."""
    return User.objects.create_user("mallory", password="mallory-pw")


@pytest.fixture
def bob(db) -> User:
    """The operator (staff)."""
    return User.objects.create_user("bob", password="bob-pw", is_staff=True)


def token_for(user: User) -> str:
    """A new API token for `user`, as `POST /api/v1/auth/token` would hand it out."""
    return issue_token(user)[0]


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


@pytest.fixture
def as_alice(alice) -> APIClient:
    return client_for(alice)


@pytest.fixture
def as_mallory(mallory) -> APIClient:
    return client_for(mallory)


@pytest.fixture
def as_bob(bob) -> APIClient:
    return client_for(bob)


@pytest.fixture
def temple(db) -> Temple:
    return Temple.objects.create(slug="jade-harbor", name="Jade Harbor Temple")


@pytest.fixture
def poem(temple) -> Poem:
    return Poem.objects.create(
        temple=temple,
        number=1,
        title="The Lantern on the Pier",
        rank="blessing",
        verse="A lantern burns where the fishing boats moor,\nits light reaches the far shore.",
        meaning="Patience brings what haste would scatter.",
        advice={t: f"Advice about {t.replace('_', ' ')} for the lantern poem." for t in TOPICS},
    )


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache(request):
    """The database cache table is no model, so transactional tests' flush leaves it alone:
    clear it, or breaker and throttle state leak from one test into the next (login failures
    too: axes keeps its per-username counts in the database, rolled back or flushed per test,
    and chat.login_guard its per-address counts in this cache)."""
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        from django.core.cache import cache

        request.getfixturevalue("db")
        cache.clear()


@pytest.fixture
def one_cluster(monkeypatch) -> SimpleNamespace:
    """Django-Q2 reports one live cluster of three workers (pids 11-13) on this host."""
    now = timezone.now()
    stat = SimpleNamespace(
        cluster_id="c1",
        host=socket.gethostname(),
        pid=100,
        status="Idle",
        workers=[11, 12, 13],
        task_q_size=0,
        reincarnations=0,
        tob=now - timedelta(minutes=1),
        timestamp=now,
    )
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: [stat]))
    return stat
