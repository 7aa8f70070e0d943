import json

from django.core.management.base import BaseCommand

from fortune_project.resilience.breakers import all_snapshots

COLUMNS = {
    "name": "NAME",
    "state": "STATE",
    "failures": "FAILURES",
    "failure_threshold": "THRESHOLD",
    "recovery_timeout": "RECOVERY",
    "retry_at": "RETRY AT",
    "last_change": "LAST CHANGE",
    "changed_by": "BY",
}


def table(snapshots: list[dict]) -> str:
    """Breakers as aligned text columns; `-` where a value is unset."""
    rows = [tuple(COLUMNS.values())]
    rows += [tuple(_cell(s, column) for column in COLUMNS) for s in snapshots]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _cell(snapshot: dict, column: str) -> str:
    value = snapshot[column]
    if column == "recovery_timeout":
        return f"{value / 1000:g} s"
    return "-" if value is None else str(value)


class Command(BaseCommand):
    help = "Show every circuit breaker and its state (shared by all processes)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the full snapshots as JSON")

    def handle(self, *args, as_json: bool = False, **options):
        snapshots = all_snapshots()
        self.stdout.write(json.dumps(snapshots, indent=2) if as_json else table(snapshots))
