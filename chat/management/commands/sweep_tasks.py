import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from chat.sweeper import sweep_forever, sweep_once


class Command(BaseCommand):
    help = "End tasks still active past their deadline plus TASK_GRACE (once, or --loop)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sweeping every SWEEP_INTERVAL seconds")

    def handle(self, *args, loop: bool, **options):
        if not loop:
            self.stdout.write(f"Ended {sweep_once()} overdue task(s).")
            return
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        self.stdout.write(f"Sweeping every {settings.SWEEP_INTERVAL} s.")
        try:
            sweep_forever(settings.SWEEP_INTERVAL, should_stop=lambda: bool(stopping))
        except KeyboardInterrupt:
            pass
