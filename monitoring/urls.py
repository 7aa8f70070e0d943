"""URLs of the operations layer.

`urlpatterns`: the staff API, included at "api/v1/monitoring/" (breakers, dashboard, worker
pool, alerts). `site_urlpatterns`: pages at fixed paths, listed in the root URL conf *before*
"admin/" so that /admin/operations/ is ours and not the admin's catch-all. The live socket
(monitoring.live.MonitoringConsumer) is routed in fortune_project/routing.py.
"""

from django.urls import path

from monitoring import ops_views
from monitoring.admin_dashboard import operations
from monitoring.views import BreakerActionView, BreakerListView

BREAKER = "circuit-breakers/<str:name>"

urlpatterns = [
    path("circuit-breakers", BreakerListView.as_view(), name="circuit-breakers"),
    path(f"{BREAKER}/reset", BreakerActionView.as_view(breaker_action="reset"), name="breaker-reset"),
    path(f"{BREAKER}/force-open", BreakerActionView.as_view(breaker_action="force_open"), name="breaker-force-open"),
    path(f"{BREAKER}/disable", BreakerActionView.as_view(breaker_action="disable"), name="breaker-disable"),
    path("dashboard", ops_views.DashboardView.as_view(), name="monitoring-dashboard"),
    path("worker-pool", ops_views.WorkerPoolView.as_view(), name="monitoring-worker-pool"),
    path("alerts", ops_views.AlertsView.as_view(), name="monitoring-alerts"),
]

site_urlpatterns = [
    path("admin/operations/", operations, name="admin-operations"),
    path("monitoring/live/", ops_views.live_page, name="monitoring-live"),
    path("health/", ops_views.health_view, name="health-check"),
    path("health/ready/", ops_views.ready_view, name="health-ready"),
    path("metrics", ops_views.metrics_view, name="prometheus-metrics"),
]
