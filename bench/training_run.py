"""Benchmark: a training run (the job) against the raw training loop on the same data.

  baseline: `training.trainer.train(spec)` called in this process — the model load, the training
            loop and the LoRA save, nothing else (the dataset already in a folder);
  job:      `run_job(TrainingRun, …)` — the dataset copied out of storage with its captions, the
            trainer started as a supervised child process (a fresh interpreter: imports and model
            load again), progress events into the run's row, the log written, the LoRA checked
            and registered, scratch removed.

Both sides alternate (`--rounds`), so drift in a shared machine's speed touches both alike. The
job's fixed cost (a child interpreter importing torch and diffusers) is a larger share of short
runs: `--steps` sets the length.

    .venv/bin/python bench/training_run.py [--rounds 3] [--steps 40] [--images 20] [--resolution 64]
    .venv/bin/python bench/training_run.py --full-size --device cuda --steps 50 --resolution 512

`--full-size` trains on a random-weight model of the real SD 1.5 shapes (UNet 320/640/1280/1280,
CLIP-L-sized text encoder, SD VAE), built offline, and also prints steps/s and peak GPU memory:
the figures a GPU worker gives. On a 2-core CPU it is very slow; use it on a GPU machine.
Runs on a throw-away data dir and SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_full_size_sd(folder: Path) -> None:
    """A StableDiffusionPipeline of SD 1.5's shapes with random weights (no download)."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from generation.pipeline.tiny import _scheduler, _tokenizer

    torch.manual_seed(0)
    vocab_folder = folder.parent / "full-size-tokenizer"
    vocab_folder.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab_size = _tokenizer(vocab_folder)
    unet = UNet2DConditionModel(
        sample_size=64,
        cross_attention_dim=768,
        attention_head_dim=8,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            projection_dim=768,
        )
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--full-size", action="store_true", help="SD 1.5 shapes (random weights)")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="imagineer-bench-"))
    os.environ.update(
        {
            "IMAGINEER_DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "imagineer.settings",
            "LOG_LEVEL": "WARNING",
            "IMAGINEER_DEVICE": args.device,
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    import io

    from django.core.management import call_command
    from PIL import Image as PILImage

    from albums.models import Album
    from albums.services import store_image
    from generation.models import DiffusionModel, ModelSource
    from generation.pipeline.runner import resolve_local_source
    from generation.registry import ensure_tiny_model
    from imagineer.core import jobs
    from imagineer.core.models import User
    from labeling.models import Label, LabelType
    from training import trainer
    from training.models import TrainingRun
    from training.services import runs

    call_command("migrate", verbosity=0)
    (data_dir / "config.yaml").write_text(f"training:\n  min_captioned_images: {min(20, args.images)}\n")
    if args.full_size:
        build_full_size_sd(data_dir / "models" / "sd15-shaped")
        model = DiffusionModel.objects.create(
            name="sd15-shaped", source_type=ModelSource.DIFFUSERS_DIR, source="models/sd15-shaped", is_default=True
        )
    else:
        model = ensure_tiny_model("tiny-sd")
    admin = User.objects.create_superuser("bench", "", "bench")
    album = Album.objects.create(name="Bench dataset", slug="bench-dataset")
    side = max(args.resolution, 64)
    for number in range(args.images):
        buffer = io.BytesIO()
        PILImage.effect_noise((side, side), 40 + number).convert("RGB").save(buffer, "PNG")
        image, _ = store_image(buffer, original_filename=f"{number}.png", album=album)
        Label.objects.create(image=image, text=f"bench caption number {number}", label_type=LabelType.CAPTION)
    parameters = {
        "steps": args.steps,
        "rank": args.rank,
        "alpha": args.rank,
        "resolution": args.resolution,
        "seed": 1,
        "learning_rate": 1e-4,
    }

    # The baseline's dataset: the same images and captions, already in a folder.
    dataset_dir = data_dir / "baseline-dataset"
    # Claimed, as in the worker: prepare_dataset writes the counts under the run's claim.
    probe = TrainingRun.objects.create(
        name="probe", model=model, parameters=runs.resolve_parameters(parameters), status="running", attempts=1
    )
    probe.albums.set([album])
    runs.prepare_dataset(probe, dataset_dir)
    probe.delete()

    def raw() -> tuple[float, list[dict]]:
        output = data_dir / "baseline-output"
        shutil.rmtree(output, ignore_errors=True)
        events: list[dict] = []

        class Collect(trainer.ProgressChannel):
            def __init__(self):
                super().__init__(None)

            def send(self, event, **fields):
                events.append({"event": event, **fields})

        spec = {
            "model": str(resolve_local_source(model)),
            "dataset_dir": str(dataset_dir),
            "output_dir": str(output),
            "parameters": runs.resolve_parameters(parameters),
            "device": args.device,
            "offline": True,
        }
        started = time.perf_counter()
        trainer.train(json.loads(json.dumps(spec)), Collect())
        return time.perf_counter() - started, events

    def job() -> TrainingRun:
        run = runs.start_training_run(
            user=admin, name=f"bench {time.time()}", albums=[album], model=model, parameters=parameters
        )
        jobs.run_job(TrainingRun, run.pk, runs.run_training)
        run.refresh_from_db()
        assert run.status == "succeeded", run.error_message
        return run

    raw()  # warm-up: file caches, first imports in this process
    raw_times, job_times, train_seconds, step_rates, peaks = [], [], [], [], []
    for _ in range(args.rounds):
        seconds, events = raw()
        raw_times.append(seconds)
        done = next(e for e in events if e["event"] == "done")
        step_rates.append(args.steps / done["seconds"])
        peaks.append(done.get("peak_memory_bytes"))
        run = job()
        job_times.append((run.finished_at - run.started_at).total_seconds())
        train_seconds.append(run.train_seconds)

    raw_median, job_median = statistics.median(raw_times), statistics.median(job_times)
    device = next(e for e in events if e["event"] == "started")["device"]
    shape = "SD 1.5-shaped" if args.full_size else "tiny-sd"
    print(
        f"model: {shape} (random weights), {args.images} images at {args.resolution} px, {args.steps} steps, "
        f"rank {args.rank}, device {device}, {args.rounds} rounds"
    )
    print(f"raw training loop (load + train + save), median:  {raw_median:7.3f} s   1.00x")
    print(f"training run end to end (the job), median:        {job_median:7.3f} s   {job_median / raw_median:.2f}x")
    print(f"  of which the trainer child process:             {statistics.median(train_seconds):7.3f} s")
    print(f"  job overhead over the raw loop:                 {job_median - raw_median:7.3f} s")
    print(f"training loop steps/s (raw), median:              {statistics.median(step_rates):7.2f}")
    if any(peaks):
        print(f"peak GPU memory (raw):                            {max(p for p in peaks if p) / 2**30:7.2f} GiB")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
