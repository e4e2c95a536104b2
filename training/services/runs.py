"""Training runs: parameters, the dataset, starting a run, and running it in a worker.

A run's dataset is every image of its albums that has a caption label. A caption a person wrote
(source `manual`) wins over a machine's; among several of one kind the newest wins. Trigger words,
when set, are prepended to every caption. The worker copies the dataset into scratch, starts the
trainer (training/trainer.py) as a child process under guards (training/supervisor.py), follows
its progress events, and registers the LoRA it wrote in the LoRA registry. The scratch folder is
removed whatever the outcome. Every write the worker makes to the run's row goes through the job
lifecycle's claim-checked update (imagineer.core.jobs), so a reaped attempt never touches its retry.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from albums.models import Album, Image
from generation.models import DiffusionModel, LoraProvenance, ModelFamily, ModelSource
from generation.pipeline.runner import resolve_local_source
from generation.registry import InvalidLora, register_lora
from generation.services import MAX_SEED
from imagineer.core import jobs, quotas
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.models import JobStatus
from imagineer.core.ratelimits import RateLimited
from imagineer.core.runtime_config import TrainingConfig, get_runtime_config
from labeling.models import Label, LabelSource, LabelType
from training import logs
from training.models import PARAMETER_NAMES, TrainingCheckpoint, TrainingRun
from training.supervisor import Guards, supervise

# Named as before the module moved into services/: LOG_LEVELS entries and log searches know it so.
logger = get_logger("training.runs")

TRAINABLE_FAMILIES = (ModelFamily.SD1, ModelFamily.SD2)
# Margin left between the wall-clock guard and the Celery soft limit of the training queue, so the
# guard (which says why) always fires before Celery's limit (which only says "time limit").
CELERY_LIMIT_MARGIN_SECONDS = 60
PROGRESS_WRITE_SECONDS = 1.0


class TooFewCaptions(ImagineerError):
    code = "too_few_captions"


class ModelNotTrainable(ImagineerError):
    code = "model_not_trainable"


class TrainingBusy(RateLimited):
    code = "training_busy"


class TrainingFailed(Exception):
    """The trainer did not produce a LoRA; the message says why (no paths)."""


# --- Parameters --------------------------------------------------------------------------------


def resolve_parameters(overrides: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters: runtime-config defaults with `overrides`, checked against the same bounds.

    Raises pydantic.ValidationError naming each bad field. A missing seed becomes a random one, so
    the parameters stored on the run are exactly what was trained.
    """
    unknown = sorted(set(overrides) - set(PARAMETER_NAMES))
    if unknown:
        raise ValueError(f"unknown training parameter(s): {', '.join(unknown)}")
    defaults = get_runtime_config().training.model_dump()
    checked = TrainingConfig.model_validate({**defaults, **overrides})
    parameters = {name: getattr(checked, name) for name in PARAMETER_NAMES}
    if parameters["seed"] is None:
        parameters["seed"] = random.SystemRandom().randint(0, MAX_SEED)
    return parameters


def check_model_trainable(model: DiffusionModel) -> None:
    if model.family not in TRAINABLE_FAMILIES:
        raise ModelNotTrainable(
            f"Model '{model.name}' is {model.get_family_display()}: LoRA training supports SD 1.x and 2.x models."
        )
    if model.source_type == ModelSource.SINGLE_FILE:
        raise ModelNotTrainable(
            f"Model '{model.name}' is a single-file checkpoint: training needs a diffusers folder or a hub model."
        )


# --- Dataset -------------------------------------------------------------------------------------


@dataclass
class DatasetItem:
    image: Image
    caption: str
    manual: bool


@dataclass
class Dataset:
    items: list[DatasetItem] = field(default_factory=list)
    uncaptioned: int = 0

    @property
    def captioned(self) -> int:
        return len(self.items)

    @property
    def manual(self) -> int:
        return sum(item.manual for item in self.items)


def caption_with_triggers(caption: str, trigger_words: str) -> str:
    triggers = ", ".join(w.strip() for w in trigger_words.split(",") if w.strip())
    return f"{triggers}, {caption}" if triggers else caption


def collect_dataset(albums: Iterable[Album], trigger_words: str = "") -> Dataset:
    """Each distinct image of the albums (album order, then image order) with its chosen caption."""
    album_ids = [album.pk for album in albums]
    images: dict[int, Image] = {}
    for album_id in album_ids:
        for image in Image.objects.filter(album_links__album_id=album_id).order_by(
            "album_links__sort_order", "album_links__id"
        ):
            images.setdefault(image.pk, image)
    chosen: dict[int, tuple[bool, int, str]] = {}
    captions = Label.objects.filter(image_id__in=list(images), label_type=LabelType.CAPTION).values_list(
        "image_id", "source", "id", "text"
    )
    for image_id, source, label_id, text in captions:
        rank = (source == LabelSource.MANUAL, label_id)
        if image_id not in chosen or rank > chosen[image_id][:2]:
            chosen[image_id] = (*rank, text)
    dataset = Dataset()
    for image_id, image in images.items():
        if image_id not in chosen or not chosen[image_id][2].strip():
            dataset.uncaptioned += 1
            continue
        manual, _, text = chosen[image_id]
        dataset.items.append(DatasetItem(image, caption_with_triggers(text.strip(), trigger_words), manual))
    return dataset


def check_enough_captions(captioned: int, uncaptioned: int, *, missing: int = 0) -> None:
    minimum = get_runtime_config().training.min_captioned_images
    if captioned < minimum:
        extra = f", {missing} whose file is missing" if missing else ""
        raise TooFewCaptions(
            f"Found {captioned} captioned image(s) in the selected albums ({uncaptioned} without a caption{extra}); "
            f"a training run needs at least {minimum}. Caption more images (labeling) or add albums.",
            details={"captioned": captioned, "uncaptioned": uncaptioned, "missing_files": missing, "minimum": minimum},
        )


# --- Starting ------------------------------------------------------------------------------------


def _lock_training_starts() -> None:
    """Serialise the active-run check with the insert: two admins at once cannot both pass it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('imagineer.training.start'))")


def check_capacity(exclude_pk: int | None = None) -> None:
    limit = get_runtime_config().training.max_active_runs
    active = TrainingRun.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
    if exclude_pk is not None:
        active = active.exclude(pk=exclude_pk)
    count = active.count()
    if count >= limit:
        raise TrainingBusy(
            f"{count} training run(s) are queued or running and the limit is {limit}; "
            "wait for one to finish or cancel one.",
            retry_after=60,
        )


def start_training_run(
    *,
    user,
    name: str,
    albums: Sequence[Album],
    model: DiffusionModel,
    trigger_words: str = "",
    description: str = "",
    parameters: dict[str, Any] | None = None,
) -> TrainingRun:
    """Check the request, record the run and queue it. Raises before writing anything when refused."""
    check_model_trainable(model)
    resolved = resolve_parameters(parameters or {})
    dataset = collect_dataset(albums, trigger_words)
    check_enough_captions(dataset.captioned, dataset.uncaptioned)
    with quotas.admit(user, gpu=True), transaction.atomic():
        _lock_training_starts()
        check_capacity()
        run = TrainingRun.objects.create(
            name=name,
            description=description,
            model=model,
            trigger_words=trigger_words,
            parameters=resolved,
            captioned_images=dataset.captioned,
            uncaptioned_images=dataset.uncaptioned,
            manual_captions=dataset.manual,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        run.albums.set(albums)
        jobs.enqueue_job(run)
    logger.info("training.run_created", run_id=run.pk, captioned=dataset.captioned, steps=resolved["steps"])
    return run


def retry_training_run(run: TrainingRun, *, user=None) -> TrainingRun:
    with quotas.admit(user, gpu=True), transaction.atomic():
        _lock_training_starts()
        check_capacity(exclude_pk=run.pk)
        return jobs.retry_job(run)


# --- Running (in the worker) -------------------------------------------------------------------


def scratch_dir(run: TrainingRun) -> Path:
    return Path(settings.IMAGINEER_TRAINING_DIR) / "scratch" / f"run-{run.pk}-attempt-{run.attempts}"


def effective_guards() -> Guards:
    config = get_runtime_config().training
    soft_limit = settings.CELERY_QUEUE_TIME_LIMITS["training"][0]
    return Guards(
        wall_clock_seconds=min(config.wall_clock_limit_seconds, max(1, soft_limit - CELERY_LIMIT_MARGIN_SECONDS)),
        idle_seconds=config.idle_limit_seconds,
        terminate_grace_seconds=config.terminate_grace_seconds,
    )


def prepare_dataset(run: TrainingRun, folder: Path) -> Dataset:
    """Copy the captioned images into `folder` with a metadata.jsonl; files gone from storage are skipped."""
    dataset = collect_dataset(run.albums.all(), run.trigger_words)
    folder.mkdir(parents=True, exist_ok=True)
    kept, missing = [], 0
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as manifest:
        for number, item in enumerate(dataset.items, start=1):
            suffix = Path(item.image.file.name).suffix.lower() or ".png"
            target = folder / f"{number:05d}{suffix}"
            try:
                with item.image.file.storage.open(item.image.file.name, "rb") as source, open(target, "wb") as copy:
                    shutil.copyfileobj(source, copy, 1024 * 1024)
            except FileNotFoundError:
                missing += 1
                target.unlink(missing_ok=True)
                continue
            manifest.write(json.dumps({"file_name": target.name, "text": item.caption}) + "\n")
            kept.append(item)
    jobs.update_job(
        run,
        captioned_images=len(kept),
        uncaptioned_images=dataset.uncaptioned,
        manual_captions=sum(item.manual for item in kept),
        missing_files=missing,
    )
    check_enough_captions(len(kept), dataset.uncaptioned, missing=missing)
    dataset.items = kept
    return dataset


def model_reference(model: DiffusionModel) -> str:
    """What the trainer loads: a local diffusers folder, or a hub id from the local cache."""
    if model.source_type == ModelSource.DIFFUSERS_DIR:
        return str(resolve_local_source(model))
    return model.source


# Environment variables the trainer does not get: it needs no database, broker, mail or API
# credentials, so a trainer (or a library it loads) that prints its environment leaks none.
# Hugging Face's own variables (HF_TOKEN for a gated hub model) are kept.
SECRET_ENV = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$|^DATABASE_URL$|BROKER|REDIS_URL|EMAIL_URL|WEBHOOK")


def trainer_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name.startswith("HF_") or not SECRET_ENV.search(name)}
    env["PYTHONUNBUFFERED"] = "1"
    if settings.IMAGINEER_HF_OFFLINE:
        env["HF_HUB_OFFLINE"] = "1"
    return env


class _RunProgress:
    """Turns the trainer's events into the run's row: progress, loss, checkpoints (cancel is seen here)."""

    def __init__(self, run: TrainingRun, output_dir: Path):
        self.run, self.output_dir = run, output_dir
        self.last_write = 0.0

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "started":
            device = {"device": str(event.get("device", ""))[:16]}
            jobs.record_progress(self.run, 0, int(event.get("total") or 0), "Training", extra_fields=device)
        elif kind == "step":
            now = time.monotonic()
            last = event.get("step") == event.get("total")
            # Fast steps (a small model) come many a second: the row is written at most once a
            # second (and at the last step), not once per step.
            if last or now - self.last_write >= PROGRESS_WRITE_SECONDS:
                self.last_write = now
                jobs.record_progress(
                    self.run,
                    int(event["step"]),
                    int(event["total"]),
                    f"Step {event['step']}",
                    extra_fields={"latest_loss": _finite(event.get("loss"))},
                )
        elif kind == "checkpoint":
            self._store_checkpoint(event)

    def _store_checkpoint(self, event: dict) -> None:
        from django.core.files import File
        from django.core.files.storage import default_storage

        source = (self.output_dir / str(event.get("file", ""))).resolve()
        if not source.is_file() or self.output_dir.resolve() not in source.parents:
            return
        step = int(event["step"])
        with open(source, "rb") as handle:
            name = default_storage.save(
                f"training/checkpoints/run-{self.run.pk}-attempt-{self.run.attempts}-step-{step}.safetensors",
                File(handle),
            )
        TrainingCheckpoint.objects.create(
            run=self.run,
            step=step,
            attempt=self.run.attempts,
            loss=_finite(event.get("loss")),
            file=name,
            file_size=source.stat().st_size,
        )


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def run_training(run: TrainingRun) -> None:
    """The worker's side of a run (called by run_job, which owns the final status)."""
    scratch = scratch_dir(run)
    # This attempt's claim means no earlier attempt is still this run's: their folders (each a
    # dataset copy) are what a killed worker left behind, and nobody else would remove them.
    for leftover in scratch.parent.glob(f"run-{run.pk}-attempt-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        log = logs.LogWriter(run, scratch)
        try:
            jobs.update_job(run, log_file=log.name)
            log.write(f"=== attempt {run.attempts} started {timezone.now():%Y-%m-%d %H:%M:%S} UTC ===")
            try:
                _train(run, scratch, log)
            except jobs.JobCancelled:
                log.write("Cancelled by an operator: the trainer was stopped.")
                raise
            except Exception as exc:  # noqa: BLE001 - the reason goes into the log too, then up to run_job
                log.write(f"The run failed: {jobs.describe_failure(exc)}")
                raise
        finally:
            jobs.update_job(run, log_file=log.close())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train(run: TrainingRun, scratch: Path, log: logs.LogWriter) -> None:
    jobs.record_progress(run, 0, run.parameters.get("steps", 0), "Preparing the dataset")
    started = time.perf_counter()
    dataset = prepare_dataset(run, scratch / "dataset")
    jobs.update_job(run, prepare_seconds=round(time.perf_counter() - started, 3))
    log.write(f"Dataset: {dataset.captioned} captioned images ({dataset.manual} captioned by a person).")
    output_dir = scratch / "output"
    spec = {
        "model": model_reference(run.model),
        "dataset_dir": str(scratch / "dataset"),
        "output_dir": str(output_dir),
        "parameters": run.parameters,
        "device": settings.IMAGINEER_DEVICE,
        "offline": settings.IMAGINEER_HF_OFFLINE or run.model.source_type != ModelSource.HUB,
    }
    (scratch / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    result = _supervise_trainer(run, scratch, output_dir, log)
    _register_result(run, result, output_dir, log)


def _supervise_trainer(run: TrainingRun, scratch: Path, output_dir: Path, log: logs.LogWriter):
    command = [sys.executable, "-m", settings.IMAGINEER_TRAINER_MODULE, "--spec", str(scratch / "spec.json")]
    started = time.perf_counter()
    try:
        return supervise(
            command,
            cwd=Path(settings.BASE_DIR),
            env=trainer_env(),
            guards=effective_guards(),
            on_line=log.write,
            on_event=_RunProgress(run, output_dir),
            # Called in this thread (supervise's caller), which has the worker's database connection.
            on_start=lambda pid: jobs.update_job(run, trainer_pid=pid),
            poll=lambda: jobs.raise_if_cancelled(run),
        )
    finally:
        # supervise has stopped the trainer's whole process group by now, whatever ended it.
        jobs.update_job(run, trainer_pid=None, train_seconds=round(time.perf_counter() - started, 3))


def _register_result(run: TrainingRun, result, output_dir: Path, log: logs.LogWriter) -> None:
    done = result.last("done")
    if result.exit_code != 0 or done is None:
        error = result.last("error")
        reason = error["message"] if error else f"the trainer exited with code {result.exit_code}"
        raise TrainingFailed(f"Training failed: {reason}. The run's log has the trainer's output.")
    lora_file = output_dir / Path(str(done.get("file", ""))).name
    try:
        lora, _ = register_lora(
            lora_file,
            name=run.name,
            family=run.model.family,
            trigger_words=run.trigger_words,
            provenance=LoraProvenance.TRAINED,
            source_id=run.pk,
            source_note=f"training run {run.pk}",
            user=run.created_by,
        )
    except InvalidLora as exc:
        raise TrainingFailed(f"The trainer's LoRA could not be registered: {exc.message}") from exc
    jobs.update_job(run, lora=lora, final_loss=_finite(done.get("loss")))
    log.write(f"Registered LoRA '{lora.slug}'.")
    logger.info("training.lora_registered", run_id=run.pk, lora=lora.slug)
