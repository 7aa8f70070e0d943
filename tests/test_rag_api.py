import pytest
from rest_framework.pagination import PageNumberPagination

from rag import chroma_client, index
from rag.models import TOPICS
from tests.support import chroma
from tests.support.chroma import make_corpus
from tests.support.processes import free_port

chroma_store = chroma.chroma_store  # shared fixtures, found by these names

URL = "/api/v1/async-chat/poems"


@pytest.fixture
def corpus(db):
    return make_corpus(("jade-harbor", "cloud-peak"), poems=3)


@pytest.fixture
def indexed(chroma_store, corpus):
    index.reindex_all()
    return corpus


def test_it_lists_poems_page_by_page(as_alice, corpus, monkeypatch):
    # DRF reads PAGE_SIZE into the paginator class once, at import: patch the class itself.
    monkeypatch.setattr(PageNumberPagination, "page_size", 4)
    body = as_alice.get(URL).json()
    assert body["count"] == 6
    assert [(p["temple"], p["number"]) for p in body["results"]] == [
        ("cloud-peak", 1),
        ("cloud-peak", 2),
        ("cloud-peak", 3),
        ("jade-harbor", 1),
    ]
    assert body["next"].endswith("?page=2")


def test_it_lists_one_temples_poems(as_alice, corpus):
    body = as_alice.get(URL, {"temple": "jade-harbor"}).json()
    assert body["count"] == 3
    assert {p["temple"] for p in body["results"]} == {"jade-harbor"}


def test_an_unknown_temple_is_a_400_naming_the_field(as_alice, corpus):
    response = as_alice.get(URL, {"temple": "atlantis"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert response.json()["error"]["details"] == {"temple": ["No temple with slug atlantis."]}


def test_it_shows_a_poem_with_all_its_fields_and_advice(as_alice, poem):
    body = as_alice.get(f"{URL}/{poem.id}").json()
    assert body["id"] == poem.id
    assert (body["temple"], body["temple_name"], body["number"]) == ("jade-harbor", "Jade Harbor Temple", 1)
    assert (body["title"], body["rank"], body["language"]) == (poem.title, "blessing", "en")
    assert (body["verse"], body["meaning"]) == (poem.verse, poem.meaning)
    assert set(body["advice"]) == set(TOPICS)


def test_a_missing_poem_is_a_404_in_json(as_alice, db):
    response = as_alice.get(f"{URL}/999999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_poems_are_not_for_anonymous_callers(client, poem):
    for path in (URL, f"{URL}/{poem.id}", f"{URL}/search?q=love"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"


def test_the_poem_api_is_read_only(as_alice, poem):
    assert as_alice.post(URL, {"title": "x"}, format="json").status_code == 405
    assert as_alice.delete(f"{URL}/{poem.id}").status_code == 405


def test_search_returns_ranked_passages(as_alice, indexed):
    response = as_alice.get(f"{URL}/search", {"q": "My wallet went missing on the bus", "k": 3})
    assert response.status_code == 200
    passages = response.json()
    assert len(passages) == 3
    assert set(passages[0]) == {"poem", "topic", "text", "score"}
    assert [p["topic"] for p in passages] == ["lost_items"] * 3
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)


def test_search_keeps_to_the_temple_asked_for(as_alice, indexed):
    cloud_peak = {p.id for p in indexed if p.temple.slug == "cloud-peak"}
    passages = as_alice.get(f"{URL}/search", {"q": "marriage", "temple": "cloud-peak", "k": 20}).json()
    assert len(passages) == 20
    assert {p["poem"] for p in passages} <= cloud_peak


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "q"), ({"q": "  "}, "q"), ({"q": "love", "k": "0"}, "k"), ({"q": "love", "k": "lots"}, "k")],
)
def test_a_bad_search_is_a_400_naming_the_field(as_alice, db, params, field):
    response = as_alice.get(f"{URL}/search", params)
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == [field]


def test_a_search_in_an_unknown_temple_is_a_400(as_alice, corpus):
    response = as_alice.get(f"{URL}/search", {"q": "love", "temple": "atlantis"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"temple": ["No temple with slug atlantis."]}


def test_search_answers_503_rag_unavailable_when_chroma_is_down(as_alice, corpus, settings):
    settings.CHROMA_URL = f"http://127.0.0.1:{free_port()}"
    chroma_client.reset_connection()
    response = as_alice.get(f"{URL}/search", {"q": "love"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rag_unavailable"
    assert response["Retry-After"]
    chroma_client.reset_connection()
