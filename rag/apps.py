from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "rag"
    verbose_name = "Poems and retrieval"

    def ready(self) -> None:
        from rag import embeddings

        embeddings.warm_up_in_web_server()  # a no-op outside the web server
