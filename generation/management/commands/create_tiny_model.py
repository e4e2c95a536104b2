from django.core.management.base import BaseCommand

from generation.registry import TINY_MODELS, ensure_tiny_model


class Command(BaseCommand):
    help = "Build a tiny random-weight Stable Diffusion pipeline offline and register it (tiny-sd, tiny-sdxl)."

    def add_arguments(self, parser):
        parser.add_argument("--name", choices=sorted(TINY_MODELS), default="tiny-sd")
        parser.add_argument("--rebuild", action="store_true", help="Rebuild the folder even if it exists.")

    def handle(self, *args, name: str, rebuild: bool, **options):
        model = ensure_tiny_model(name, rebuild=rebuild)
        default = " (default model)" if model.is_default else ""
        self.stdout.write(self.style.SUCCESS(f"Registered '{model.name}' ({model.get_family_display()}){default}."))
