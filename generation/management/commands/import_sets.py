from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.sets import import_sets


class Command(BaseCommand):
    help = "Import set templates in the earlier format (a config.yaml naming each set's CSV) as set-template albums."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, help="Folder holding config.yaml and the CSV files.")

    def handle(self, *args, directory: Path, **options):
        config = directory / "config.yaml"
        if not config.is_file():
            raise CommandError(f"No config.yaml in {directory}.")
        report = import_sets(config)
        for label, keys in (("created", report.created), ("updated", report.updated), ("unchanged", report.unchanged)):
            self.stdout.write(f"{label}: {', '.join(keys) if keys else '-'}")
        for error in report.errors:
            self.stderr.write(f"error: {error}")
        summary = (
            f"{len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.errors)} with errors"
        )
        self.stdout.write(self.style.SUCCESS(summary) if not report.errors else self.style.WARNING(summary))
