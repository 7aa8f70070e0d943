"""Two reference endpoints for the responsiveness benchmark, never part of the product.

`trivial` is the cheapest Django view there is: the floor any API endpoint is compared with.
`blocking` is the design the product replaces: the request waits for the LLM inline, holding one
of the web process's sync threads for as long as the LLM takes (at most BENCH_BLOCKING_TIMEOUT).
"""

import os

import openai
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@csrf_exempt
def blocking(request: HttpRequest) -> JsonResponse:
    timeout = float(os.environ.get("BENCH_BLOCKING_TIMEOUT", "10"))
    client = openai.OpenAI(base_url=settings.LLM_BASE_URL or None, api_key="none", max_retries=0)
    try:
        reply = client.chat.completions.create(
            model=settings.LLM_MODEL,
            messages=[{"role": "user", "content": "Will my new shop do well?"}],
            timeout=timeout,
        )
    except openai.OpenAIError as exc:
        return JsonResponse({"error": {"code": "llm_failed", "message": str(exc)}}, status=504)
    return JsonResponse({"interpretation": reply.choices[0].message.content})
