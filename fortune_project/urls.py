from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chat.views import TokenView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/auth/token", TokenView.as_view(), name="auth-token"),
    path("api/v1/async-chat/poems", include("rag.urls")),
    path("api/v1/async-chat/", include("chat.urls")),
    path("api/v1/monitoring/", include("monitoring.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
