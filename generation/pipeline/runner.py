"""Loading diffusers pipelines, keeping them warm, and running them.

One `PipelineCache` per worker process keeps the last IMAGINEER_PIPELINE_CACHE_SIZE pipelines
loaded (LRU). LoRAs are applied per job as named adapters with per-job weights and removed
afterwards, so a second job on the same model never reloads it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from generation.models import DiffusionModel, Lora, ModelFamily, ModelSource
from generation.pipeline.schedulers import build_scheduler
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger

logger = get_logger(__name__)


class ModelUnavailable(ImagineerError):
    code = "model_unavailable"


class LoraIncompatible(ImagineerError):
    code = "lora_incompatible"


def select_device() -> tuple[str, Any]:
    """(device, dtype): CUDA → MPS → CPU unless IMAGINEER_DEVICE says; fp16 on CUDA only."""
    import torch

    wanted = settings.IMAGINEER_DEVICE
    if wanted in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda", torch.float16
    if wanted in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps", torch.float32
    return "cpu", torch.float32


def resolve_local_source(model: DiffusionModel) -> Path:
    path = Path(model.source)
    return path if path.is_absolute() else Path(settings.DATA_DIR) / path


def pipeline_class(family: str):
    import diffusers

    if family == ModelFamily.SDXL:
        return diffusers.StableDiffusionXLPipeline
    return diffusers.StableDiffusionPipeline


def load_pipeline(model: DiffusionModel):
    """Load a model's pipeline onto the selected device. Raises ModelUnavailable with what to do."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()  # worker logs are lines, not progress bars
    transformers.utils.logging.disable_progress_bar()
    device, dtype = select_device()
    cls = pipeline_class(model.family)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if model.family != ModelFamily.SDXL:
        kwargs.update(safety_checker=None, requires_safety_checker=False)  # labeling owns NSFW
    offline = settings.IMAGINEER_HF_OFFLINE or os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        if model.source_type == ModelSource.HUB:
            pipe = cls.from_pretrained(model.source, local_files_only=offline, **kwargs)
        elif model.source_type == ModelSource.DIFFUSERS_DIR:
            folder = resolve_local_source(model)
            if not (folder / "model_index.json").exists():
                raise ModelUnavailable(
                    f"Model '{model.name}': its diffusers folder is missing on this worker. "
                    "Re-create it (for tiny-sd: manage.py create_tiny_model) or fix the model's source in admin."
                )
            pipe = cls.from_pretrained(str(folder), local_files_only=True, **kwargs)
        else:
            checkpoint = resolve_local_source(model)
            if not checkpoint.is_file():
                raise ModelUnavailable(
                    f"Model '{model.name}': its checkpoint file is missing on this worker; fix the source in admin."
                )
            pipe = cls.from_single_file(str(checkpoint), local_files_only=offline, **kwargs)
    except ModelUnavailable:
        raise
    except OSError as exc:
        if model.source_type == ModelSource.HUB and offline:
            raise ModelUnavailable(
                f"Model '{model.name}' ({model.source}) is not in the local Hugging Face cache and this "
                f"worker is offline. Download it where a hub is reachable (`huggingface-cli download {model.source}`) "
                "and copy the cache here, or register a local diffusers folder."
            ) from exc
        raise ModelUnavailable(f"Model '{model.name}' could not be loaded: {type(exc).__name__}.") from exc
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if settings.IMAGINEER_ATTENTION_SLICING:
        pipe.enable_attention_slicing()
    if settings.IMAGINEER_VAE_TILING:
        pipe.vae.enable_tiling()
    # Schedulers are rebuilt per job from the model's own config, never from a previous job's.
    pipe._imagineer_scheduler_config = dict(pipe.scheduler.config)
    pipe._imagineer_device = device
    logger.info("pipeline.loaded", model=model.name, device=device)
    return pipe


@dataclass
class CacheStats:
    loads: int = 0
    hits: int = 0
    evictions: int = 0


class PipelineCache:
    """A bounded LRU of loaded pipelines, keyed by model id and version (updated_at)."""

    def __init__(self, size: int | None = None):
        self.size = size
        self._pipelines: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, model: DiffusionModel) -> tuple[Any, bool]:
        """(pipeline, loaded_now)."""
        key = (model.pk, model.source_type, model.source, model.updated_at)
        with self._lock:
            if key in self._pipelines:
                self._pipelines.move_to_end(key)
                self.stats.hits += 1
                return self._pipelines[key], False
            for stale in [k for k in self._pipelines if k[0] == model.pk]:
                del self._pipelines[stale]  # the model was edited: drop its old pipeline
            pipe = load_pipeline(model)
            self.stats.loads += 1
            self._pipelines[key] = pipe
            while len(self._pipelines) > (self.size or settings.IMAGINEER_PIPELINE_CACHE_SIZE):
                self._pipelines.popitem(last=False)
                self.stats.evictions += 1
                _free_device_memory()
            return pipe, True

    def clear(self) -> None:
        with self._lock:
            self._pipelines.clear()
            _free_device_memory()


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


pipeline_cache = PipelineCache()


@dataclass
class GenerationRequest:
    prompts: Sequence[str]  # one per image
    negative_prompt: str
    steps: int
    guidance_scale: float
    width: int
    height: int
    seeds: Sequence[int]  # one per image
    scheduler: str
    loras: Sequence[tuple[Lora, float]] = field(default_factory=list)


@dataclass
class GenerationOutput:
    images: list  # PIL images, in request order
    load_seconds: float
    inference_seconds: float


def lora_local_path(lora: Lora) -> str:
    """A local file holding the LoRA's weights: its stored file, or on remote storage a scratch copy.

    The copy (purged by retention) is written under a temporary name and renamed when whole, and
    one whose size is not the LoRA's is copied again: a copy cut short by a killed worker or a full
    disk must not pass for the LoRA in every later job.
    """
    from django.core.files.storage import default_storage

    try:
        return default_storage.path(lora.file.name)
    except NotImplementedError:
        pass
    scratch = Path(settings.IMAGINEER_SCRATCH_DIR) / "loras" / f"{lora.sha256}.safetensors"
    # file_size is the size registered with the LoRA (0: unknown). A copy of another size was cut
    # short by an earlier version that wrote in place; copies are renamed into place when whole.
    if scratch.is_file() and (not lora.file_size or scratch.stat().st_size == lora.file_size):
        return str(scratch)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    # Per process: two pool processes copying the same LoRA at once each rename a whole file.
    partial = scratch.with_name(f"{scratch.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    try:
        with default_storage.open(lora.file.name, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        os.replace(partial, scratch)
    finally:
        partial.unlink(missing_ok=True)
    return str(scratch)


def _apply_loras(pipe, loras: Sequence[tuple[Lora, float]]) -> None:
    names, weights = [], []
    from django.core.files.storage import default_storage

    for lora, weight in loras:
        adapter = f"lora_{lora.pk}"
        if not default_storage.exists(lora.file.name):
            raise LoraIncompatible(f"LoRA '{lora.name}': its file is missing from storage.")
        try:
            pipe.load_lora_weights(lora_local_path(lora), adapter_name=adapter)
        except Exception as exc:  # noqa: BLE001 - any load failure is the LoRA's, reported by name
            # The library's own words can name storage paths: say what failed, not where.
            raise LoraIncompatible(
                f"LoRA '{lora.name}' could not be applied to this model ({type(exc).__name__}): "
                "the file is unreadable or its weights do not fit this model's layers."
            ) from exc
        names.append(adapter)
        weights.append(weight)
    pipe.set_adapters(names, adapter_weights=weights)


def generate(
    model: DiffusionModel,
    request: GenerationRequest,
    on_step: Callable[[int, int], None] | None = None,
    cache: PipelineCache | None = None,
) -> GenerationOutput:
    """Run one forward pass for len(request.prompts) images. `on_step(step, total)` may raise to stop."""
    import torch

    cache = cache or pipeline_cache
    started = time.perf_counter()
    pipe, loaded_now = cache.get(model)
    load_seconds = time.perf_counter() - started if loaded_now else 0.0
    started = time.perf_counter()
    try:
        if request.loras:
            _apply_loras(pipe, request.loras)
        pipe.scheduler = build_scheduler(request.scheduler, pipe._imagineer_scheduler_config)
        generator_device = "cpu" if pipe._imagineer_device == "mps" else pipe._imagineer_device
        generators = [torch.Generator(generator_device).manual_seed(int(seed)) for seed in request.seeds]

        def step_end(pipeline, step, timestep, callback_kwargs):
            if on_step is not None:
                on_step(step + 1, request.steps)
            return callback_kwargs

        with torch.inference_mode():
            result = pipe(
                prompt=list(request.prompts),
                negative_prompt=[request.negative_prompt] * len(request.prompts) if request.negative_prompt else None,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance_scale,
                width=request.width,
                height=request.height,
                generator=generators,
                callback_on_step_end=step_end,
                output_type="pil",
            )
    finally:
        if request.loras:
            pipe.unload_lora_weights()
    return GenerationOutput(
        images=list(result.images), load_seconds=load_seconds, inference_seconds=time.perf_counter() - started
    )
