import getpass
import os

from django.core.management.base import BaseCommand, CommandError

from fortune_project.resilience.breakers import BreakerUnavailable, apply_action, breaker_names
from monitoring.management.commands.breakers import table


def command_actor() -> str:
    """`manage.py (unix user)`: who ran the command, recorded on each BreakerEvent."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a container
        user = f"uid {os.getuid()}"
    return f"manage.py ({user})"


class Command(BaseCommand):
    help = "Close circuit breakers by name (or --all), in every process at once; prints their new states."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument("--all", action="store_true", dest="every", help="reset every breaker")
        parser.add_argument("--reason", default="manual reset")

    def handle(self, *args, names: list[str], every: bool, reason: str, **options):
        chosen = self._chosen(names, every)
        who = command_actor()
        try:
            snapshots = [apply_action(name, "reset", who, reason=reason) for name in chosen]
        except BreakerUnavailable as exc:
            raise CommandError(str(exc))
        self.stdout.write(table(snapshots))

    @staticmethod
    def _chosen(names: list[str], every: bool) -> list[str]:
        """Every name checked before anything is reset: a typo resets nothing."""
        known = breaker_names()
        if every == bool(names):
            raise CommandError("name the breakers to reset, or pass --all (not both)")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CommandError(f"unknown breaker(s): {', '.join(unknown)} (known: {', '.join(known)})")
        return known if every else list(dict.fromkeys(names))
