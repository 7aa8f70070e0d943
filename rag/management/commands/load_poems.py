from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rag.index import LoadIndexer
from rag.loader import LoadReport, UnreadableFile, load_poems


class Command(BaseCommand):
    help = (
        "Load or update poems from a JSON, JSON Lines or CSV file (idempotent by temple + number). "
        "Bad rows are reported by line and skipped; a file that is not text is refused (exit 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options):
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        report, indexer = LoadReport(), LoadIndexer()

        def progress(count: int) -> None:
            if count % 50 == 0:
                self.stdout.write(f"  {count} rows read…")

        def skipped(line: int, message: str) -> None:
            self.stderr.write(f"{path}:{line}: skipped: {message}")

        try:
            load_poems(path, progress=progress, on_error=skipped, on_batch=indexer, report=report)
        except UnreadableFile as exc:
            if report.created or report.updated or report.unchanged or report.bad:
                self._summary(path, report, indexer)
            raise CommandError(f"{path}: {exc}") from exc
        self._summary(path, report, indexer)

    def _summary(self, path: Path, report: LoadReport, indexer: LoadIndexer) -> None:
        for message, (line, rows) in report.warnings.items():
            more = f" ({rows} rows)" if rows > 1 else ""
            self.stderr.write(f"{path}:{line}: warning: {message}{more}")
        self.stdout.write(
            f"Poems: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.bad} bad row(s)."
        )
        indexer.summary(self.stdout, self.stderr)
