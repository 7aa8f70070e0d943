"""schemathesis against /api/schema/, signed in: no 5xx, and every response matches the schema.

Bounded: a fixed number of examples per operation, no Hypothesis deadline, derandomized so a
failure replays. The whole run takes well under a minute on the 2-core CI machine.
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from rag import index
from tests.conftest import client_for

pytest_plugins = ["tests.support.chroma"]  # the chroma_store fixture

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 25


@pytest.fixture
def bob_header(bob) -> dict[str, str]:
    """bob the operator may call every endpoint, so every operation is fuzzed signed in."""
    return {"Authorization": client_for(bob)._credentials["HTTP_AUTHORIZATION"]}


@pytest.fixture
def api_schema(bob_header, poem, chroma_store):
    index.index_poems([poem.id])  # search has something to find, instead of 503 rag_unavailable
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), headers=bob_header)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_never_answers_5xx_and_matches_its_schema(case, bob_header):
    # Semantic refusals of schema-valid input (made-up credentials, an id that names no row) are
    # the API's right: the issue asks for no 5xx and responses that match the schema, so only the
    # check that every schema-valid request be accepted is left out.
    case.call_and_validate(headers=bob_header, excluded_checks=[positive_data_acceptance])
