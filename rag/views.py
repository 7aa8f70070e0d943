"""Read-only poem browsing for the chat app: list, detail, and semantic search."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from fortune_project.errors import ServiceUnavailable
from fortune_project.resilience.bulkhead import BulkheadFull
from rag.models import Poem
from rag.retrieval import search_or_unavailable
from rag.serializers import PassageSerializer, PoemSerializer, SearchSerializer, TempleFilterSerializer

# Seconds a client should wait after `rag_busy`: a search holds its slot well under a second.
RAG_BUSY_RETRY = 1
RAG_BUSY_MESSAGE = "Search is busy; try again in a moment."


class PoemListView(generics.ListAPIView):
    serializer_class = PoemSerializer

    def get_queryset(self):
        form = TempleFilterSerializer(data=self.request.query_params)
        form.is_valid(raise_exception=True)
        poems = Poem.objects.select_related("temple").order_by("temple__slug", "number")
        temple = form.validated_data.get("temple")
        return poems.filter(temple=temple) if temple else poems


class PoemDetailView(generics.RetrieveAPIView):
    serializer_class = PoemSerializer
    queryset = Poem.objects.select_related("temple")


class SearchThrottle(UserRateThrottle):
    scope = "search"


class PoemSearchView(APIView):
    """Ranked passages; 429 past the caller's SEARCH_RATE; 503 `rag_busy` at once when this
    process already embeds SEARCH_CONCURRENCY searches; 503 `rag_unavailable` when Chroma cannot
    answer (a bare list has no room to flag a keyword fallback, and a client can retry).

    A sync view on purpose: under ASGI Django runs it in a thread, so the CPU-bound embedding
    never runs on the event loop."""

    throttle_classes = [SearchThrottle]

    @extend_schema(parameters=[SearchSerializer], responses=PassageSerializer(many=True))
    def get(self, request):
        form = SearchSerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            passages = search_or_unavailable(data["q"], data.get("temple"), data["k"])
        except BulkheadFull:
            raise ServiceUnavailable(RAG_BUSY_MESSAGE, "rag_busy", retry_after=RAG_BUSY_RETRY)
        if passages is None:
            raise ServiceUnavailable("Search is unavailable right now; try again shortly.", "rag_unavailable")
        return Response(PassageSerializer(passages, many=True).data)
