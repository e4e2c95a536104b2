"""The registry of diffusion models and LoRAs, as InvokeAI's model manager.

Which models exist and which is the default, the parameters a model gives a job that does not
say, the tiny offline model, and LoRA files: checked, stored once by content hash, looked up by id
or slug, and matched to a model's family. Generation jobs and set runs (generation.services) and
training (which registers the LoRAs it trains) read and write it through these functions.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from generation.models import FAMILY_DEFAULT_SIZE, DiffusionModel, Lora, LoraProvenance, ModelFamily, ModelSource
from generation.pipeline.loras import NotALora, inspect_lora
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.runtime_config import get_runtime_config
from imagineer.core.slugs import unique_slug

logger = get_logger(__name__)

TINY_MODELS = {"tiny-sd": ModelFamily.SD1, "tiny-sdxl": ModelFamily.SDXL}


class NoDefaultModel(ImagineerError):
    code = "no_default_model"


class InvalidLora(ImagineerError):
    code = "invalid_lora"


# --- Models ------------------------------------------------------------------------------------


def default_model() -> DiffusionModel:
    model = DiffusionModel.objects.filter(is_default=True, enabled=True).first()
    if model is None:
        model = DiffusionModel.objects.filter(enabled=True).order_by("pk").first()
    if model is None:
        raise NoDefaultModel("No diffusion model is registered. Run `manage.py create_tiny_model` or add one in admin.")
    return model


def model_defaults(model: DiffusionModel) -> dict[str, Any]:
    """Parameters a job gets when it does not say: the model's own, else the global defaults."""
    globals_ = get_runtime_config().generation
    size = FAMILY_DEFAULT_SIZE[ModelFamily(model.family)]
    return {
        "steps": model.default_steps or globals_.steps,
        "guidance_scale": model.default_guidance_scale
        if model.default_guidance_scale is not None
        else globals_.guidance_scale,
        "width": model.default_width or size,
        "height": model.default_height or size,
        "scheduler": model.default_scheduler or globals_.scheduler,
        "negative_prompt": model.default_negative_prompt or globals_.negative_prompt,
    }


def ensure_tiny_model(name: str = "tiny-sd", *, rebuild: bool = False) -> DiffusionModel:
    """Build the tiny random-weight pipeline on disk (if missing) and register it. Offline."""
    from generation.pipeline.tiny import build_tiny_sd, build_tiny_sdxl

    family = TINY_MODELS[name]
    folder = Path(settings.IMAGINEER_MODELS_DIR) / name
    if rebuild or not (folder / "model_index.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        pipe = build_tiny_sdxl() if family == ModelFamily.SDXL else build_tiny_sd()
        pipe.save_pretrained(str(folder))
        logger.info("tiny_model.built", model=name)
    try:
        source = str(folder.resolve().relative_to(Path(settings.DATA_DIR).resolve()))
    except ValueError:
        source = str(folder.resolve())
    small = 64 if family == ModelFamily.SD1 else 512
    model, created = DiffusionModel.objects.update_or_create(
        name=name,
        defaults={
            "source_type": ModelSource.DIFFUSERS_DIR,
            "source": source,
            "family": family,
            "description": "Tiny random-weight pipeline built locally: output is noise, every code path is real.",
            "default_steps": 8,
            "default_width": small,
            "default_height": small,
            "default_scheduler": "euler",
        },
    )
    if not DiffusionModel.objects.filter(is_default=True).exists():
        DiffusionModel.objects.filter(pk=model.pk).update(is_default=True)
        model.is_default = True
    return model


# --- LoRAs -------------------------------------------------------------------------------------


def _sha256_of(fileobj: IO[bytes]) -> str:
    digest = hashlib.sha256()
    fileobj.seek(0)
    while chunk := fileobj.read(1024 * 1024):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def register_lora(
    path: Path,
    *,
    name: str,
    family: str | None = None,
    trigger_words: str = "",
    default_weight: float = 0.6,
    provenance: str = LoraProvenance.UPLOADED,
    source_id: int | None = None,
    source_note: str = "",
    user=None,
) -> tuple[Lora, bool]:
    """Check a .safetensors file is an SD LoRA, copy it into storage and register it.

    The family is read from the file when its shapes tell; a given family must agree. Returns
    (lora, created); the same bytes already registered are returned, not stored twice.
    """
    try:
        info = inspect_lora(path)
    except NotALora as exc:
        raise InvalidLora(str(exc)) from exc
    if info.family and family and info.family != family:
        raise InvalidLora(f"{path.name}: its weights are for {info.family}, not {family}.")
    family = family or info.family
    if not family:
        raise InvalidLora(
            f"{path.name}: cannot tell which model family this LoRA is for "
            f"(cross-attention width {info.cross_attention_dim}); say it explicitly."
        )
    size = path.stat().st_size
    if size > settings.IMAGINEER_LORA_MAX_BYTES:
        raise InvalidLora(f"{path.name}: larger than the {settings.IMAGINEER_LORA_MAX_BYTES} byte limit.")
    with open(path, "rb") as handle:
        sha = _sha256_of(handle)
        existing = Lora.objects.filter(sha256=sha).first()
        if existing:
            return existing, False
        slug = unique_slug(Lora.objects.all(), name, fallback="lora", max_length=190)
        stored = default_storage.save(f"loras/{slug}-{uuid.uuid4().hex[:8]}.safetensors", File(handle))
    try:
        lora = Lora.objects.create(
            name=name,
            slug=slug,
            file=stored,
            sha256=sha,
            file_size=size,
            family=family,
            trigger_words=trigger_words,
            default_weight=default_weight,
            provenance=provenance,
            source_id=source_id,
            source_note=source_note,
            created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
        )
    except BaseException:
        default_storage.delete(stored)
        raise
    logger.info("lora.registered", lora=lora.slug, family=family)
    return lora, True


def register_uploaded_lora(upload, **fields: Any) -> tuple[Lora, bool]:
    """register_lora for an uploaded file (API and admin), checked from a scratch copy.

    The copy keeps the upload's own suffix, so a pickled .ckpt is refused by its name, and nothing
    is stored for a file the check refuses.
    """
    import tempfile

    fields.setdefault("provenance", LoraProvenance.UPLOADED)
    with tempfile.TemporaryDirectory() as scratch:
        name = Path(upload.name or "upload")
        path = Path(scratch) / (name.stem[:100] + name.suffix.lower())
        with open(path, "wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        return register_lora(path, **fields)


def resolve_lora(reference: Any) -> Lora:
    """A LoRA by id or slug (what templates and API clients send)."""
    query = Lora.objects.filter(enabled=True)
    lora = query.filter(pk=reference).first() if str(reference).isdigit() else query.filter(slug=reference).first()
    if lora is None:
        raise InvalidLora(f"Unknown LoRA: {reference!r}.", code="unknown_lora")
    return lora


def check_loras_fit(model: DiffusionModel, loras: Sequence[tuple[Lora, float]]) -> None:
    for lora, _ in loras:
        if lora.family != model.family:
            raise InvalidLora(
                f"LoRA '{lora.slug}' is for {lora.get_family_display()}, model '{model.name}' is "
                f"{model.get_family_display()}.",
                code="lora_incompatible",
            )
