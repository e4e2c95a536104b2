"""Generation jobs and set runs: queueing them and the job bodies the Celery tasks run.

Views validate and call `start_generation_job` / `start_set_run`; Celery tasks call
`run_generation_job` / `run_set_run` through the shared job lifecycle. Which models and LoRAs
exist, and the defaults a model gives, live in generation.registry.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from albums import services as album_services
from albums.image_files import facts_for_generated
from albums.models import Album, AlbumSource, AlbumType, ImageSource
from generation.models import DiffusionModel, GenerationJob, Lora, SetRun
from generation.pipeline import runner
from generation.pipeline.metadata import encode_png
from generation.pipeline.schedulers import scheduler_label
from generation.registry import InvalidLora, check_loras_fit, default_model, model_defaults, resolve_lora
from generation.sets import item_label, join_negative_prompts, render_set_prompt
from imagineer.core import jobs, quotas
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.runtime_config import get_runtime_config

logger = get_logger(__name__)

MAX_SEED = 2**32 - 1
PROGRESS_INTERVAL_SECONDS = 0.5


class NotASetTemplate(ImagineerError):
    code = "not_a_set_template"


# --- Generation jobs ---------------------------------------------------------------------------


def start_generation_job(
    *,
    user,
    model: DiffusionModel,
    prompt: str,
    negative_prompt: str | None = None,
    scheduler: str | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    width: int | None = None,
    height: int | None = None,
    seed: int | None = None,
    count: int = 1,
    loras: Sequence[tuple[Lora, float]] = (),
    album: Album | None = None,
) -> GenerationJob:
    """Queue a generation job. Unset parameters take the model's defaults; no seed → a random one."""
    check_loras_fit(model, loras)
    if album is not None and album.is_set_template:
        raise album_services.AlbumIsTemplate(f"'{album.name}' is a set template: templates never collect images.")
    defaults = model_defaults(model)
    with quotas.admit(user, images=count, gpu=True), transaction.atomic():
        job = GenerationJob.objects.create(
            prompt=prompt,
            negative_prompt=defaults["negative_prompt"] if negative_prompt is None else negative_prompt,
            model=model,
            scheduler=scheduler or defaults["scheduler"],
            steps=defaults["steps"] if steps is None else steps,
            guidance_scale=defaults["guidance_scale"] if guidance_scale is None else guidance_scale,
            width=width or defaults["width"],
            height=height or defaults["height"],
            seed=secrets.randbelow(MAX_SEED + 1) if seed is None else seed,
            count=count,
            loras=[{"lora": lora.pk, "name": lora.slug, "weight": weight} for lora, weight in loras],
            album=album,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        jobs.enqueue_job(job)
    return job


def retry_generation_job(job: GenerationJob, *, user) -> GenerationJob:
    """Queue a failed or cancelled job again; the images it still has to make count against the quota."""
    with quotas.admit(user, images=max(0, job.count - job.images.count()), gpu=True):
        return jobs.retry_job(job)


def retry_set_run(run: SetRun, *, user) -> SetRun:
    """Queue a failed or cancelled set run again (all rows: a retry starts the run afresh)."""
    with quotas.admit(user, images=run.total_items, gpu=True):
        return jobs.retry_job(run)


def rerun_generation_job(job: GenerationJob, *, user) -> GenerationJob:
    """A new job with exactly the same parameters (seed included)."""
    loras = [(resolve_lora(entry["lora"]), entry["weight"]) for entry in job.loras]
    return start_generation_job(
        user=user,
        model=job.model,
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        scheduler=job.scheduler,
        steps=job.steps,
        guidance_scale=job.guidance_scale,
        width=job.width,
        height=job.height,
        seed=job.seed,
        count=job.count,
        loras=loras,
        album=job.album,
    )


class ThrottledProgress:
    """Turns per-step callbacks into at most one job progress write per interval (and the last)."""

    def __init__(self, job, total_units: int):
        self.job, self.total, self.last = job, total_units, 0.0

    def __call__(self, done_units: int) -> None:
        now = time.monotonic()
        if done_units >= self.total or now - self.last >= PROGRESS_INTERVAL_SECONDS:
            self.last = now
            jobs.record_progress(self.job, done_units, self.total)


def _image_parameters(
    *, prompt, negative_prompt, model, scheduler, steps, guidance_scale, width, height, seed, loras, origin
):
    return {
        # Which job made it: provenance, and it keeps two people's identical pixels two images
        # (each with its owner's visibility) instead of one shared row.
        "origin": origin,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "model": model.name,
        "scheduler": scheduler,
        "sampler": scheduler_label(scheduler),
        "steps": steps,
        "guidance_scale": guidance_scale,
        "width": width,
        "height": height,
        "seed": seed,
        "loras": [{"name": lora.slug, "weight": weight, "sha256": lora.sha256} for lora, weight in loras],
    }


def save_generated_image(pil_image, parameters: dict[str, Any], *, user, album: Album | None):
    """Encode with metadata chunks and store as an albums.Image (source generated)."""
    png = encode_png(pil_image, parameters)
    image, _ = album_services.store_image(
        io.BytesIO(png),
        facts=facts_for_generated(png, pil_image),
        user=user,
        album=album,
        source=ImageSource.GENERATED,
        prompt=parameters["prompt"],
        negative_prompt=parameters["negative_prompt"],
        seed=parameters["seed"],
        steps=parameters["steps"],
        guidance_scale=parameters["guidance_scale"],
        model=parameters["model"],
        loras=[{"name": lora["name"], "weight": lora["weight"]} for lora in parameters["loras"]],
    )
    return image


def _job_loras(entries: Sequence[dict[str, Any]]) -> list[tuple[Lora, float]]:
    loras = []
    for entry in entries:
        lora = Lora.objects.filter(pk=entry["lora"]).first()
        if lora is None:
            raise InvalidLora(f"LoRA '{entry.get('name')}' was deleted after the job was queued.")
        loras.append((lora, float(entry["weight"])))
    return loras


def run_generation_job(job: GenerationJob) -> None:
    """Job body: generate `count` images in batches of at most the runtime config's generation.max_batch."""
    model = job.model
    loras = _job_loras(job.loras)
    batch = get_runtime_config().generation.max_batch
    chunks = [list(range(start, min(job.count, start + batch))) for start in range(0, job.count, batch)]
    progress = ThrottledProgress(job, job.steps * len(chunks))
    load = inference = save = 0.0
    for chunk_no, indexes in enumerate(chunks):
        seeds = [(job.seed + i) % (MAX_SEED + 1) for i in indexes]
        request = runner.GenerationRequest(
            prompts=[job.prompt] * len(indexes),
            negative_prompt=job.negative_prompt,
            steps=job.steps,
            guidance_scale=job.guidance_scale,
            width=job.width,
            height=job.height,
            seeds=seeds,
            scheduler=job.scheduler,
            loras=loras,
        )
        output = _generate_or_explain(model, request, lambda step, total, c=chunk_no: progress(c * job.steps + step))
        load += output.load_seconds
        inference += output.inference_seconds
        started = time.perf_counter()
        with album_services.nsfw_checks_together():  # one NSFW check job for the batch's images
            _save_batch(job, model, loras, output.images, seeds)
        save += time.perf_counter() - started
        jobs.update_job(
            job, load_seconds=round(load, 4), inference_seconds=round(inference, 4), save_seconds=round(save, 4)
        )


def _save_batch(job: GenerationJob, model, loras, pil_images, seeds) -> None:
    for pil_image, seed in zip(pil_images, seeds, strict=True):
        parameters = _image_parameters(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            model=model,
            scheduler=job.scheduler,
            steps=job.steps,
            guidance_scale=job.guidance_scale,
            width=job.width,
            height=job.height,
            seed=seed,
            loras=loras,
            origin=f"generation-job:{job.pk}",
        )
        image = save_generated_image(pil_image, parameters, user=job.created_by, album=job.album)
        job.images.add(image)


def _generate_or_explain(model, request, on_step):
    """Run the pipeline; turn out-of-memory into a message an operator can act on."""
    import torch

    try:
        return runner.generate(model, request, on_step=on_step)
    except torch.OutOfMemoryError as exc:
        runner.pipeline_cache.clear()
        raise ImagineerError(
            f"Out of device memory for {len(request.prompts)} image(s) at {request.width}x{request.height}; "
            "use fewer images per job or a smaller size.",
            code="out_of_memory",
        ) from exc


# --- Set runs ----------------------------------------------------------------------------------


def start_set_run(
    template: Album,
    *,
    user,
    theme: str,
    album_name: str = "",
    model: DiffusionModel | None = None,
    overrides: dict[str, Any] | None = None,
    batch_size: int | None = None,
) -> SetRun:
    """Queue a run that generates one image per template row into a new output album."""
    if not template.is_set_template:
        raise NotASetTemplate(f"'{template.name}' is not a set template.")
    if not template.template_items:
        raise NotASetTemplate(f"Set template '{template.name}' has no items to generate.", code="empty_set_template")
    overrides = dict(overrides or {})
    model = model or template.default_model or default_model()
    loras = [
        (resolve_lora(entry.get("lora") or entry.get("name")), float(entry.get("weight", 0.6)))
        for entry in template.loras
    ]
    check_loras_fit(model, loras)
    defaults = model_defaults(model)
    parameters = {
        "steps": overrides.get("steps") or defaults["steps"],
        "guidance_scale": (
            overrides["guidance_scale"] if overrides.get("guidance_scale") is not None else defaults["guidance_scale"]
        ),
        "width": overrides.get("width") or template.width or defaults["width"],
        "height": overrides.get("height") or template.height or defaults["height"],
        "scheduler": overrides.get("scheduler") or defaults["scheduler"],
        "negative_prompt": join_negative_prompts(overrides.get("negative_prompt", ""), template.negative_prompt),
        "seed": overrides["seed"] if overrides.get("seed") is not None else secrets.randbelow(MAX_SEED + 1),
        "loras": [{"lora": lora.pk, "name": lora.slug, "weight": weight} for lora, weight in loras],
        "items": list(template.template_items),  # snapshot: editing the template later changes no run
    }
    name = album_name or f"{template.name} · {theme} · {timezone.now():%Y-%m-%d %H:%M}"
    with quotas.admit(user, images=len(parameters["items"]), gpu=True), transaction.atomic():
        run = SetRun.objects.create(
            template=template,
            album_name=name[:255],
            theme=theme,
            model=model,
            parameters=parameters,
            batch_size=batch_size or get_runtime_config().generation.set_run_batch_size,
            total_items=len(parameters["items"]),
            progress_total=len(parameters["items"]),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        jobs.enqueue_job(run)
    return run


class SetRunFailed(ImagineerError):
    code = "set_run_failed"


def _output_album(run: SetRun) -> Album:
    album = Album.objects.filter(source_type=AlbumSource.BATCH_GENERATION, source_id=run.pk).first()
    if album is None:
        album = Album.objects.create(
            name=run.album_name,
            slug=album_services.unique_album_slug(run.album_name),
            description=f"Generated from set template '{run.template.name}' (album #{run.template_id}) "
            f"with theme: {run.theme}. Set run #{run.pk}.",
            album_type=AlbumType.BATCH,
            source_type=AlbumSource.BATCH_GENERATION,
            source_id=run.pk,
            created_by=run.created_by,
        )
    if run.output_album_id != album.pk:
        jobs.update_job(run, output_album=album)
    return album


def run_set_run(run: SetRun) -> None:
    """Job body: rows in batches; a failed batch marks its rows failed and the run goes on."""
    album = _output_album(run)
    p = run.parameters
    items = p["items"]
    loras = _job_loras(p["loras"])
    prompts = [render_set_prompt(run.template, row, run.theme) for row in items]
    seeds = [(p["seed"] + i) % (MAX_SEED + 1) for i in range(len(items))]
    first_error = ""
    last_check = [0.0]

    def cancel_check(step: int, total: int) -> None:
        # Between diffusion steps: notice an operator's cancel within PROGRESS_INTERVAL_SECONDS.
        if time.monotonic() - last_check[0] >= PROGRESS_INTERVAL_SECONDS:
            last_check[0] = time.monotonic()
            jobs.raise_if_cancelled(run)

    for start in range(0, len(items), max(1, run.batch_size)):
        rows = list(range(start, min(len(items), start + run.batch_size)))
        request = runner.GenerationRequest(
            prompts=[prompts[i] for i in rows],
            negative_prompt=p["negative_prompt"],
            steps=p["steps"],
            guidance_scale=p["guidance_scale"],
            width=p["width"],
            height=p["height"],
            seeds=[seeds[i] for i in rows],
            scheduler=p["scheduler"],
            loras=loras,
        )
        saved: set[int] = set()
        try:
            output = _generate_or_explain(run.model, request, on_step=cancel_check)
            # GPU time, for the owner's daily quota (imagineer.core.quotas).
            jobs.update_job(run, inference_seconds=F("inference_seconds") + round(output.inference_seconds, 4))
            with album_services.nsfw_checks_together():  # one NSFW check job for the batch's rows
                for row, pil_image in zip(rows, output.images, strict=True):
                    parameters = _image_parameters(
                        prompt=prompts[row],
                        negative_prompt=p["negative_prompt"],
                        model=run.model,
                        scheduler=p["scheduler"],
                        steps=p["steps"],
                        guidance_scale=p["guidance_scale"],
                        width=p["width"],
                        height=p["height"],
                        seed=seeds[row],
                        loras=loras,
                        origin=f"set-run:{run.pk}",
                    )
                    save_generated_image(pil_image, parameters, user=run.created_by, album=album)
                    saved.add(row)
                    jobs.update_job(run, completed_items=F("completed_items") + 1)
        except (jobs.JobCancelled, jobs.JobLost):
            raise
        except Exception as exc:  # noqa: BLE001 - the batch's unsaved rows are counted; the run goes on
            message = jobs.describe_failure(exc)
            first_error = first_error or message
            failed = [i for i in rows if i not in saved]
            logger.warning("set_run.batch_failed", run_id=run.pk, rows=len(failed), exc_type=type(exc).__name__)
            run.failures.extend({"row": i + 1, "item": item_label(items[i]), "error": message} for i in failed)
            jobs.update_job(run, failed_items=F("failed_items") + len(failed), failures=run.failures)
        jobs.record_progress(run, rows[-1] + 1, len(items), f"{rows[-1] + 1}/{len(items)} rows")
    # update_job has read the counters back onto `run`.
    if run.completed_items == 0:
        raise SetRunFailed(f"All {len(items)} rows failed. First error: {first_error}")
