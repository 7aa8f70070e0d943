import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fortune_project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from fortune_project import daphne_close_codes  # noqa: E402
from fortune_project.routing import websocket_urlpatterns  # noqa: E402
from monitoring import public_health  # noqa: E402

daphne_close_codes.install()  # so the contract's 1003 (and 1011) reach the client under Daphne

application = ProtocolTypeRouter(
    {
        "http": public_health.asgi(django_asgi_app),  # its health answer from memory, on the loop
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
