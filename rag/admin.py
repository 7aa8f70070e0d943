"""Admin for temples and their fortune poems (the database is the truth; ChromaDB indexes it)."""

from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from rag.models import Poem, Temple

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _PoemCount(TypedDict):
    poem_count: int


@admin.register(Temple)
class TempleAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "poem_count")
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(poem_count=Count("poems"))

    @admin.display(description="poems", ordering="poem_count")
    def poem_count(self, temple: "WithAnnotations[Temple, _PoemCount]") -> int:
        return temple.poem_count


@admin.register(Poem)
class PoemAdmin(admin.ModelAdmin):
    list_display = ("__str__", "temple", "number", "title", "rank", "language", "weight", "updated_at")
    list_filter = ("temple", "language", "rank")
    search_fields = ("title", "verse", "meaning", "rank")
    list_select_related = ("temple",)
    ordering = ("temple__slug", "number")
    readonly_fields = ("updated_at",)

    def save_model(self, request: HttpRequest, obj: Poem, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Retrieval reads the ChromaDB index, which only the index commands write.
        self.message_user(request, "Run `manage.py rag_reindex` to refresh the search index.", messages.WARNING)
