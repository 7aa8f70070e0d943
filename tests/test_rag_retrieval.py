import json
import random
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from fortune_project.resilience.breakers import get_breaker
from fortune_project.resilience.deadlines import Deadline, DeadlineExceeded
from rag import chroma_client, embeddings, index, poem_vectors, related
from rag.chroma_client import ChromaUnavailable
from rag.embeddings import EmbeddingError
from rag.models import TOPICS, Poem, Temple
from rag.retrieval import retrieve, search
from tests.support import chroma
from tests.support.chroma import TOPIC_QUESTIONS, ChromaServer, SlowProxy, make_poem
from tests.support.processes import free_port

# Shared fixtures, found by these names.
chroma_store, sample_poems, sample_store = chroma.chroma_store, chroma.sample_poems, chroma.sample_store

pytestmark = pytest.mark.django_db


def deadline(seconds: float = 60) -> Deadline:
    return Deadline(timezone.now() + timedelta(seconds=seconds))


def poem_no(poems: list[Poem], temple: str, number: int) -> Poem:
    return next(p for p in poems if p.temple.slug == temple and p.number == number)


# --- Ranking, over the sample corpus in an embedded store -------------------------------------


def test_it_ranks_love_advice_first_for_a_love_question(sample_store, sample_poems):
    poem = poem_no(sample_poems, "jade-harbor", 1)
    result = retrieve("Will the man I have been seeing ask me to marry him?", poem, deadline())
    assert result.degraded_reasons == []
    assert (result.passages[0].poem, result.passages[0].topic) == (poem.id, "love")
    assert result.passages[0].text == poem.advice["love"]


def test_the_matching_topic_ranks_first_for_at_least_90_percent_of_the_labelled_questions(sample_store, sample_poems):
    labelled = json.loads(TOPIC_QUESTIONS.read_text())
    assert len(labelled) == 50
    rng = random.Random(8)  # the drawn poem, reproducibly
    misses = []
    for item in labelled:
        poem = rng.choice(sample_poems)
        top = retrieve(item["question"], poem, deadline()).passages[0]
        if top.topic != item["topic"]:
            misses.append((item["question"], item["topic"], top.topic))
    assert len(misses) <= 5, misses


def test_own_passages_come_first_routed_advice_first_then_related_ones_on_that_topic_from_the_same_temple(
    sample_store, sample_poems, settings
):
    settings.RAG_RELATED_K = 4
    poem = poem_no(sample_poems, "cloud-peak", 7)
    result = retrieve("I lost my passport at the airport", poem, deadline())
    own, related = result.passages[: len(TOPICS) + 2], result.passages[len(TOPICS) + 2 :]
    assert [t.topic for t in result.topics][0] == "lost_items"
    assert {p.poem for p in own} == {poem.id}
    assert {p.topic for p in own} == {"verse", "meaning", *TOPICS}
    routed = len(result.topics)
    assert [p.topic for p in own[:routed]] == [t.topic for t in result.topics]
    rest = own[routed:]
    assert [p.score for p in rest] == sorted((p.score for p in rest), reverse=True)
    assert len(related) == 4 and poem.id not in {p.poem for p in related}
    assert {p.topic for p in related} <= {t.topic for t in result.topics}
    assert [p.score for p in related] == sorted((p.score for p in related), reverse=True)
    temples = dict(Poem.objects.filter(id__in=[p.poem for p in related]).values_list("id", "temple__slug"))
    assert set(temples.values()) == {"cloud-peak"}
    assert -1 <= min(p.score for p in result.passages) <= max(p.score for p in result.passages) <= 1


@pytest.mark.parametrize(
    ("question", "topic"),
    [("Will my new shop do well?", "career"), ("She left me last month. Will she come back?", "love")],
)
def test_the_readmes_questions_get_their_topics_advice_first_whatever_poem_is_drawn(
    sample_store, sample_poems, question, topic
):
    for poem in sample_poems[::7]:
        result = retrieve(question, poem, deadline())
        assert result.degraded_reasons == []
        assert (result.passages[0].poem, result.passages[0].topic) == (poem.id, topic)
        assert result.topics[0].topic == topic and 0 < result.topics[0].score <= 1


def test_the_verse_and_the_meaning_never_come_before_the_routed_advice(sample_store, sample_poems):
    poem = poem_no(sample_poems, "jade-harbor", 3)
    for question in ("What does this poem say about my luck with money?", "Is the meaning of my poem good for love?"):
        result = retrieve(question, poem, deadline())
        assert result.passages[0].topic == result.topics[0].topic
        assert result.passages[0].topic not in ("verse", "meaning")


def test_a_poems_stored_vectors_are_fetched_once_per_version(sample_store, sample_poems, monkeypatch):
    poem = poem_no(sample_poems, "jade-harbor", 9)
    poem_vectors.forget()
    fetched = []
    real_get = chroma_client.get
    monkeypatch.setattr(chroma_client, "get", lambda *a, **k: fetched.append(a) or real_get(*a, **k))
    for question in ("Will I find my ring?", "Will my exam go well?", "Is my husband faithful?"):
        assert retrieve(question, poem, deadline()).degraded_reasons == []
    assert len(fetched) == 1
    changed = Poem.objects.select_related("temple").get(id=poem.id)
    changed.advice = {**changed.advice, "study": "Sit the exam in the morning."}
    result = retrieve("Will my exam go well?", changed, deadline())
    assert len(fetched) == 2  # another version: asked again, and the index holds the old text
    assert result.degraded_reasons == ["poem_not_indexed"]
    assert result.passages[0].text == "Sit the exam in the morning."


def chroma_down(writing: bool):
    raise ConnectionError("chroma is down")


def test_a_warm_process_answers_in_full_through_a_chroma_outage_until_its_cache_is_stale(
    sample_store, sample_poems, monkeypatch
):
    poem = poem_no(sample_poems, "cloud-peak", 11)
    assert retrieve("Will my business grow?", poem, deadline()).degraded_reasons == []
    monkeypatch.setattr(chroma_client, "_connect", chroma_down)
    warm = retrieve("Is my shop going to make money?", poem, deadline())
    assert warm.degraded_reasons == [] and len(warm.passages) == len(TOPICS) + 2 + 3
    monkeypatch.setattr(related, "clock", lambda: time.monotonic() + 3600)
    stale = retrieve("Is my shop going to make money?", poem, deadline())
    assert stale.degraded_reasons == ["rag_unavailable"]
    assert [p.topic for p in stale.passages[:1]] == [warm.passages[0].topic]


def test_no_related_passages_are_added_when_related_k_is_zero(sample_store, sample_poems, settings):
    settings.RAG_RELATED_K = 0
    poem = sample_poems[0]
    assert {p.poem for p in retrieve("Will I get the job?", poem, deadline()).passages} == {poem.id}


def test_search_respects_the_temple_filter(sample_store, sample_poems):
    cloud_peak = poem_no(sample_poems, "cloud-peak", 1).temple
    passages = search("Where did I leave my keys?", cloud_peak, k=10)
    assert len(passages) == 10
    temples = set(Poem.objects.filter(id__in=[p.poem for p in passages]).values_list("temple__slug", flat=True))
    assert temples == {"cloud-peak"}
    assert [p.topic for p in passages[:3]] == ["lost_items"] * 3


# --- Degraded answers ------------------------------------------------------------------------


@pytest.fixture
def shrine():
    """A temple of our own: the module's sample corpus already holds the conftest's temple."""
    return Temple.objects.create(slug="test-shrine", name="Test Shrine")


@pytest.fixture
def poem(shrine) -> Poem:
    return make_poem(shrine, 1)


def test_it_falls_back_to_the_poems_text_when_there_is_no_index(chroma_store, poem):
    result = retrieve("Will my career take off?", poem, deadline())
    assert result.degraded_reasons == ["rag_unavailable"]
    assert (result.passages[0].topic, result.passages[0].text) == ("career", poem.advice["career"])


def test_without_chroma_the_router_still_ranks_the_poems_text(chroma_store, poem):
    result = retrieve("She left me last month. Will she come back?", poem, deadline())
    assert result.degraded_reasons == ["rag_unavailable"]
    assert (result.passages[0].topic, result.topics[0].topic) == ("love", "love")
    assert {p.poem for p in result.passages} == {poem.id}


def test_it_falls_back_to_topic_words_when_the_embedding_model_fails(chroma_store, poem, monkeypatch):
    def broken(texts, timeout, **kwargs):
        raise EmbeddingError("cannot load the ONNX embedding model")

    monkeypatch.setattr(embeddings, "embed", broken)
    result = retrieve("Will my career take off?", poem, deadline())
    assert result.degraded_reasons == ["rag_unavailable"]
    assert result.passages[0].topic == "career"
    assert [t.topic for t in result.topics] == ["career"]


def test_a_poem_missing_from_the_index_is_answered_from_its_text(chroma_store, poem, shrine):
    other = make_poem(shrine, 2)
    index.index_poems([other.id])
    result = retrieve("Will my career take off?", poem, deadline())
    assert result.degraded_reasons == ["poem_not_indexed"]
    assert result.passages[0] == next(p for p in result.passages if p.poem == poem.id and p.topic == "career")
    assert other.id in {p.poem for p in result.passages}  # related ones still come from the index


def test_a_poem_edited_since_it_was_indexed_is_answered_from_its_current_text(chroma_store, poem):
    index.index_poems([poem.id])
    poem.advice = {**poem.advice, "career": "Ask for the promotion on the first day of spring."}
    poem.save(update_fields=["advice"])
    result = retrieve("Will my career take off?", poem, deadline())
    assert result.degraded_reasons == ["poem_not_indexed"]
    assert result.passages[0].text == "Ask for the promotion on the first day of spring."


def test_related_passages_the_database_no_longer_holds_are_left_out(chroma_store, poem, shrine, settings):
    settings.RAG_RELATED_K = 20
    gone, kept = make_poem(shrine, 2), make_poem(shrine, 3)
    index.index_poems([poem.id, gone.id, kept.id])
    Poem.objects.filter(id=gone.id).delete()  # as when var/chroma outlives its database
    passages = retrieve("Will my career take off?", poem, deadline()).passages
    assert {p.poem for p in passages} == {poem.id, kept.id}


def test_a_temple_with_no_passage_on_the_routed_topic_adds_no_related_ones_and_does_not_fail(
    chroma_store, shrine, settings
):
    settings.RAG_RELATED_K = 4
    loving = make_poem(shrine, 1, topics=("love",))
    index.index_poems([loving.id])  # the shrine's index holds no career advice at all
    passages = retrieve("Will my career take off?", loving, deadline()).passages
    assert {p.poem for p in passages} == {loving.id}


def test_a_passed_deadline_starts_no_retrieval(chroma_store, poem):
    with pytest.raises(DeadlineExceeded):
        retrieve("Will my career take off?", poem, deadline(-1))


def test_an_embedding_that_spends_the_whole_budget_makes_no_chroma_call_and_blames_no_breaker(
    chroma_store, poem, settings, monkeypatch
):
    settings.RAG_TIMEOUT = 0.2
    queries = []

    def slow_embed(texts, timeout):
        time.sleep(0.3)
        return [[0.0] * 384 for _ in texts]

    monkeypatch.setattr(embeddings, "embed", slow_embed)
    monkeypatch.setattr(chroma_client, "query", lambda *args, **kwargs: queries.append(args))
    for _ in range(3):
        result = retrieve("Will my career take off?", poem, deadline())
        assert result.degraded_reasons == ["rag_unavailable"]
    assert queries == []
    assert (get_breaker("rag").state(), get_breaker("chromadb").state()) == ("closed", "closed")


# --- Against a real `chroma run` server -------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("chroma-server")
    server = ChromaServer(root / "data", root).start()
    yield server
    server.stop()


@pytest.fixture
def served(server, settings, sample_poems):
    """The first few sample poems indexed into the server; this test's client talks to it."""
    settings.CHROMA_URL = server.url
    chroma_client.reset_connection()
    index.index_poems([p.id for p in sample_poems[:4]])
    yield server
    chroma_client.reset_connection()


def assert_degraded_within(result, started: float, seconds: float) -> None:
    assert result.degraded_reasons == ["rag_unavailable"]
    assert time.monotonic() - started < seconds


@pytest.mark.slow
def test_it_retrieves_through_a_chroma_server(served, sample_poems):
    poem = sample_poems[0]
    result = retrieve("My wallet was stolen on the train, will it turn up?", poem, deadline())
    assert result.degraded_reasons == []
    assert (result.passages[0].poem, result.passages[0].topic) == (poem.id, "lost_items")


@pytest.mark.slow
def test_an_unreachable_server_degrades_at_once(settings, sample_poems):
    settings.CHROMA_URL = f"http://127.0.0.1:{free_port()}"
    chroma_client.reset_connection()
    started = time.monotonic()
    assert_degraded_within(retrieve("Will I get the job?", sample_poems[0], deadline()), started, 3)


@pytest.mark.slow
def test_a_server_stopped_mid_run_degrades_and_retrieval_recovers_when_it_returns(served, sample_poems, settings):
    settings.RAG_TIMEOUT = 3
    settings.RAG_CACHE_SECONDS = 0  # every retrieval reads the temple's vectors, as once the cache is stale
    poem = sample_poems[1]
    assert retrieve("Will I get the job?", poem, deadline()).degraded_reasons == []
    served.stop()
    started = time.monotonic()
    assert_degraded_within(retrieve("Will I get the job?", poem, deadline()), started, 4)
    served.start()  # same port, same data: the next call reconnects by itself
    assert retrieve("Will I get the job?", poem, deadline()).degraded_reasons == []


@pytest.mark.slow
def test_a_server_slower_than_rag_timeout_degrades_within_the_budget(served, sample_poems, settings):
    proxy = SlowProxy(served.port)
    try:
        settings.CHROMA_URL = proxy.url
        settings.RAG_TIMEOUT = 1
        settings.RAG_CACHE_SECONDS = 0
        chroma_client.reset_connection()
        poem = sample_poems[2]
        assert retrieve("Should I move abroad?", poem, deadline()).degraded_reasons == []
        proxy.delay = 5
        started = time.monotonic()
        assert_degraded_within(retrieve("Should I move abroad?", poem, deadline()), started, 1.5)
    finally:
        proxy.close()


@pytest.mark.slow
def test_the_tasks_deadline_caps_the_budget_below_rag_timeout(served, sample_poems, settings):
    proxy = SlowProxy(served.port, delay=5)
    try:
        settings.CHROMA_URL = proxy.url
        settings.RAG_TIMEOUT = 30
        chroma_client.reset_connection()
        started = time.monotonic()
        assert_degraded_within(retrieve("Should I move abroad?", sample_poems[3], deadline(1)), started, 1.5)
    finally:
        proxy.close()


@pytest.mark.slow
def test_search_raises_rather_than_hangs_when_the_server_is_slow(served, settings):
    proxy = SlowProxy(served.port, delay=5)
    try:
        settings.CHROMA_URL = proxy.url
        chroma_client.reset_connection()
        started = time.monotonic()
        with pytest.raises(ChromaUnavailable):
            search("Should I move abroad?", timeout=0.5)
        assert time.monotonic() - started < 1.5
    finally:
        proxy.close()
