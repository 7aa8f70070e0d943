"""A tiny JSON-over-HTTP client for tests against a live server (not Django's test client)."""

import json
import urllib.error
import urllib.request


def call(method: str, url: str, body: dict | None = None, token: str | None = None, timeout: float = 10):
    """Returns (status, parsed JSON body, headers)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null"), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers
