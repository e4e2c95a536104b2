"""Benchmark: generation jobs against the raw diffusers call, cold vs warm, set-run batching.

Measured in one run, on one random-weight model big enough that the raw call takes about a second
on a 2-core CPU (UNet 64/128/128 channels, 2 layers per block; 64x64 px, 4 steps, guidance 7.5):

  (a) warm job end to end (API → broker → real Celery worker → image, thumbnail, rows) vs the raw
      `pipe(...)` call with the same parameters, in this process: overhead ratio;
  (b) the first job (cold: model load) vs the warm ones, and whether the second job reloaded;
  (c) a 12-row set run with batch size 4 vs batch size 1.

Raw calls and jobs alternate, and so do the two set-run batch sizes, so that drift in the speed of
a shared machine touches both sides of each ratio alike.

    .venv/bin/python bench/generation_pipeline.py [--jobs 5] [--device cpu]

Runs on a throw-away data dir, SQLite and the filesystem broker (or CELERY_BROKER_URL if set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAMS = {
    "prompt": "a lighthouse on a cliff at dusk",
    "steps": 4,
    "width": 64,
    "height": 64,
    "guidance_scale": 7.5,
    "scheduler": "euler",
}


def build_bench_model(folder: Path) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from generation.pipeline.tiny import build_tiny_sd

    pipe = build_tiny_sd()
    torch.manual_seed(0)
    pipe.unet = UNet2DConditionModel(
        block_out_channels=(64, 128, 128),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
        attention_head_dim=8,
    )
    pipe.save_pretrained(str(folder))


def wait_final(model_cls, pk: int, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = model_cls.objects.get(pk=pk)
        if obj.is_final:
            return obj
        time.sleep(0.25)  # poll gently: timings come from the rows, and polling must not steal CPU
    raise SystemExit(f"{model_cls.__name__} {pk} did not finish")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5, help="warm jobs and raw calls to take the median of")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="imagineer-bench-"))
    env = {
        "IMAGINEER_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "imagineer.settings",
        "LOG_LEVEL": "WARNING",
        "IMAGINEER_DEVICE": args.device,
        "IMAGINEER_GENERATION_RATE": "100000/m",
        "IMAGINEER_GENERATION_MAX_BATCH": "4",
    }
    os.environ.update(env)
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    import torch
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from albums.models import Album
    from generation.models import DiffusionModel, GenerationJob, ModelSource, SetRun
    from generation.pipeline.runner import load_pipeline
    from generation.sets import import_sets
    from imagineer.core.models import User

    call_command("migrate", verbosity=0)
    folder = data_dir / "models" / "bench-sd"
    build_bench_model(folder)
    model = DiffusionModel.objects.create(
        name="bench-sd", source_type=ModelSource.DIFFUSERS_DIR, source="models/bench-sd", is_default=True
    )
    admin = User.objects.create_superuser("bench", "", "bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")

    # (a) raw diffusers call, warm, in this process.
    pipe = load_pipeline(model)
    from generation.pipeline.schedulers import build_scheduler

    pipe.scheduler = build_scheduler("euler", pipe._imagineer_scheduler_config)

    def raw(seed: int) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            pipe(
                PARAMS["prompt"],
                negative_prompt="blurry, low quality",
                num_inference_steps=PARAMS["steps"],
                width=64,
                height=64,
                guidance_scale=PARAMS["guidance_scale"],
                generator=torch.Generator("cpu").manual_seed(seed),
            )
        return time.perf_counter() - started

    raw(0)  # warm-up

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imagineer",
            "worker",
            "-Q",
            "generation,default",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(8)  # let the worker start before the cold job is timed from its POST

        def job(seed: int) -> GenerationJob:
            body = client.post(
                "/api/generation/jobs/", {**PARAMS, "seed": seed, "negative_prompt": "blurry, low quality"}
            ).json()
            done = wait_final(GenerationJob, body["id"])
            assert done.status == "succeeded", done.error_message
            return done

        cold = job(1000)
        # Interleaved, so drift in the machine's speed touches both sides alike.
        raw_times, warm = [], []
        for i in range(args.jobs):
            raw_times.append(raw(3000 + i))
            warm.append(job(2000 + i))

        def e2e(j: GenerationJob) -> float:
            return (j.finished_at - j.created_at).total_seconds()

        # (c) set runs: 12 rows, batch 1 vs batch 4 (different seeds: no duplicate short-cut).
        import_sets(ROOT / "tests" / "data" / "sets" / "config.yaml")
        template = Album.objects.get(slug="set-zodiac")
        run_times: dict[int, list[float]] = {1: [], 4: []}
        for batch, seed in ((1, 5000), (4, 6000), (1, 7000), (4, 8000)):
            body = client.post(
                f"/api/albums/{template.pk}/generate/",
                {
                    "theme": "bench",
                    "batch_size": batch,
                    "seed": seed,
                    **{k: PARAMS[k] for k in ("steps", "width", "height", "guidance_scale", "scheduler")},
                },
            ).json()
            run = wait_final(SetRun, body["id"])
            assert run.status == "succeeded" and run.completed_items == 12, run.error_message
            run_times[batch].append((run.finished_at - run.started_at).total_seconds())
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    raw_median = statistics.median(raw_times)
    warm_median = statistics.median(e2e(j) for j in warm)
    inference_median = statistics.median(j.inference_seconds for j in warm)
    print(
        f"model: bench-sd (random weights), {PARAMS['width']}x{PARAMS['height']}, {PARAMS['steps']} steps, device {args.device}"
    )
    print(f"(a) raw pipe() call, median of {args.jobs}:        {raw_median:7.3f} s   1.00x")
    print(f"    warm job end to end, median of {args.jobs}:     {warm_median:7.3f} s   {warm_median / raw_median:.2f}x")
    print(
        f"    of which inference in the worker:          {inference_median:7.3f} s   {inference_median / raw_median:.2f}x"
    )
    print(
        f"(b) cold first job end to end:                 {e2e(cold):7.3f} s   {e2e(cold) / warm_median:.2f}x warm (model load {cold.load_seconds:.3f} s)"
    )
    print(f"    model reloads in warm jobs:                {sum(1 for j in warm if j.load_seconds)}")
    batch1, batch4 = statistics.median(run_times[1]), statistics.median(run_times[4])
    print(f"(c) 12-row set run, batch 1, median of 2:      {batch1:7.3f} s   1.00x")
    print(f"    12-row set run, batch 4, median of 2:      {batch4:7.3f} s   {batch4 / batch1:.2f}x")


if __name__ == "__main__":
    main()
