from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat.pages import chat_page
from chat.views import RevokeAllTokensView, TokenView
from monitoring import urls as monitoring_urls
from monitoring.public_health import PublicHealthView

urlpatterns = [
    *monitoring_urls.site_urlpatterns,  # before "admin/": /admin/operations/ is ours
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("chat/", chat_page, name="chat-page"),
    path("api/v1/auth/token", TokenView.as_view(), name="auth-token"),
    path("api/v1/auth/token/revoke-all", RevokeAllTokensView.as_view(), name="auth-token-revoke-all"),
    # The public health summary sits beside the chat API it describes; operations computes it.
    path("api/v1/async-chat/health", PublicHealthView.as_view(), name="public-health"),
    path("api/v1/async-chat/", include("rag.urls")),
    path("api/v1/async-chat/", include("chat.urls")),
    path("api/v1/monitoring/", include("monitoring.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from drf-spectacular-sidecar; "split": its start-up script is a file (?script), not inline (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]
