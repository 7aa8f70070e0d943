"""The product's URLs, plus /bench/trivial and /bench/blocking for the responsiveness baseline."""

from django.urls import path

from bench.site import views
from fortune_project.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    path("bench/trivial", views.trivial, name="bench-trivial"),
    path("bench/blocking", views.blocking, name="bench-blocking"),
    *product_urlpatterns,
]
