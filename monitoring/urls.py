from django.urls import path

from monitoring.views import BreakerActionView, BreakerListView

BREAKER = "circuit-breakers/<str:name>"

urlpatterns = [
    path("circuit-breakers", BreakerListView.as_view(), name="circuit-breakers"),
    path(f"{BREAKER}/reset", BreakerActionView.as_view(breaker_action="reset"), name="breaker-reset"),
    path(f"{BREAKER}/force-open", BreakerActionView.as_view(breaker_action="force_open"), name="breaker-force-open"),
    path(f"{BREAKER}/disable", BreakerActionView.as_view(breaker_action="disable"), name="breaker-disable"),
]
