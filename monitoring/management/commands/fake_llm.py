import signal
import threading

from django.core.management.base import BaseCommand, CommandParser

from monitoring.drills.fake_llm import MODES, make_server


class Command(BaseCommand):
    help = (
        "Run a fault-injecting OpenAI-compatible server for tests and failure drills. "
        'Switch modes while it runs: POST /control {"mode": "hang"}; GET /control shows call counts.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8400)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--mode", choices=MODES, default="ok")
        parser.add_argument("--latency", type=float, default=1.0, help="seconds before each chunk in slow mode")
        parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between chunks in ok mode")

    def handle(
        self, *args: object, port: int, host: str, mode: str, latency: float, chunk_delay: float, **options: object
    ) -> None:
        server = make_server(host, port, mode, latency, chunk_delay)
        # SIGTERM stops serving cleanly; shutdown() must run outside the serving thread.
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
        self.stdout.write(f"fake_llm listening on http://{host}:{server.server_port}/v1 (mode {mode})")
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
