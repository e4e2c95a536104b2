from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.lora_import import import_lora_folder


class Command(BaseCommand):
    help = "Import a LoRA folder in the earlier layout (<dir>/<folder>/<file>.safetensors, config.yaml, index.json)."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)

    def handle(self, *args, directory: Path, **options):
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder.")
        report = import_lora_folder(directory)
        for label in report.imported:
            self.stdout.write(f"imported  {label}")
        for label in report.already_present:
            self.stdout.write(f"present   {label}")
        for label, reason in report.skipped:
            self.stdout.write(f"skipped   {label}: {reason}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(report.imported)} imported, {len(report.already_present)} already present, "
                f"{len(report.skipped)} skipped"
            )
        )
