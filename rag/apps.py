from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "rag"
    verbose_name = "Poems and retrieval"

    def ready(self) -> None:
        from fortune_project import webserver
        from rag import chroma_client, embeddings

        if webserver.serving():  # the web server only: loaded before it freezes start-up, no client opened
            chroma_client.preload()
            embeddings.warm_up_in_web_server()
