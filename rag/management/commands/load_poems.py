from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rag.index import index_changed_poems
from rag.loader import load_poems


class Command(BaseCommand):
    help = "Load or update poems from a JSON, JSON Lines or CSV file (idempotent by temple + number)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options):
        if not path.is_file():
            raise CommandError(f"{path}: no such file")

        def progress(count: int) -> None:
            if count % 50 == 0:
                self.stdout.write(f"  {count} rows read…")

        report = load_poems(path, progress=progress)
        for line, message in report.errors:
            self.stderr.write(f"{path}:{line}: skipped: {message}")
        self.stdout.write(
            f"Poems: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{len(report.errors)} bad row(s)."
        )
        index_changed_poems(report.poem_ids, self.stdout, self.stderr)
