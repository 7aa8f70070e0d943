"""The /chat/ demo page: a plain page whose script talks only to the public API and WebSocket."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rag.models import LANGUAGES


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/chat.html", {"languages": LANGUAGES})
