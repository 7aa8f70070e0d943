import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fortune_project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from fortune_project import admission, daphne_close_codes  # noqa: E402
from fortune_project.routing import websocket_urlpatterns  # noqa: E402
from monitoring import public_health  # noqa: E402
from rag import busy  # noqa: E402

daphne_close_codes.install()  # so the contract's 1003 (and 1011) reach the client under Daphne

application = ProtocolTypeRouter(
    {
        # On the event loop: the health answer from memory, a search refused while search is full,
        # then at most WEB_MAX_CONCURRENT_REQUESTS requests into Django (the rest wait as coroutines).
        "http": public_health.asgi(busy.asgi(admission.bounded(django_asgi_app))),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
