"""Read-only poem browsing for the chat app: list, detail, and semantic search."""

from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from fortune_project.errors import ServiceUnavailable
from rag.models import Poem
from rag.retrieval import search_or_unavailable
from rag.serializers import PassageSerializer, PoemSerializer, SearchSerializer, TempleFilterSerializer


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


class PoemSearchView(APIView):
    """Ranked passages; 503 `rag_unavailable` when Chroma cannot answer (a bare list has no
    room to flag a keyword fallback, and a client can retry)."""

    def get(self, request):
        form = SearchSerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        passages = search_or_unavailable(data["q"], data.get("temple"), data["k"])
        if passages is None:
            raise ServiceUnavailable("Search is unavailable right now; try again shortly.", "rag_unavailable")
        return Response(PassageSerializer(passages, many=True).data)
