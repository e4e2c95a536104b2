"""Helpers of the legacy import tests: images on disk, running the command, the state it decides."""

import io
from pathlib import Path

from django.core.management import call_command
from PIL import Image as PILImage

from albums.models import Album, AlbumImage, Image
from labeling.models import Label
from legacy.models import LegacyAsset


def png(path: Path, color: int, *, text: dict | None = None, size=(32, 32)) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = PILImage.new("RGB", size, (color % 256, (color * 7) % 256, (color * 13) % 256))
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    out = io.BytesIO()
    img.save(out, "PNG", pnginfo=info)
    path.write_bytes(out.getvalue())
    return out.getvalue()


def run_import(outputs, packs, *args) -> str:
    out = io.StringIO()
    call_command(
        "import_legacy_media",
        "--outputs",
        str(outputs),
        "--packs",
        str(packs),
        "--thumbnails",
        "none",
        *args,
        stdout=out,
    )
    return out.getvalue()


def state() -> dict:
    """Everything an import decides, in comparable form."""
    return {
        "images": sorted(Image.objects.values_list("sha256", "source", "prompt")),
        "albums": sorted(Album.objects.values_list("name", "album_type", "is_public")),
        "links": sorted(AlbumImage.objects.values_list("album__name", "image__sha256")),
        "assets": sorted(LegacyAsset.objects.values_list("relative_path", "outcome", "image__sha256")),
        "labels": sorted(Label.objects.values_list("image__sha256", "label_type", "text")),
    }
