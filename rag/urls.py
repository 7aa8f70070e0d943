from django.urls import path

from rag import views

# Included at "api/v1/async-chat/".
urlpatterns = [
    path("poems", views.PoemListView.as_view(), name="poem-list"),
    path("poems/search", views.PoemSearchView.as_view(), name="poem-search"),
    path("poems/<int:pk>", views.PoemDetailView.as_view(), name="poem-detail"),
]
