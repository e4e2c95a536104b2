"""The LoRA trainer: the child process a training run starts (`python -m training.trainer`).

It knows nothing of Django. It reads a spec (JSON: model folder, dataset folder, output folder,
parameters), trains LoRA adapters on the UNet's attention projections with peft and the standard
diffusers text-to-image objective (MSE between predicted and true noise, or velocity for
v-prediction models), and writes real `.safetensors` LoRAs in the diffusers format.

Two channels go back to the supervisor (training/supervisor.py):
- stdout/stderr: lines for people, kept verbatim in the run's log;
- the progress pipe (--progress-fd): one JSON object per line (`started`, `step`, `checkpoint`,
  `done`), so progress and loss are never parsed from prose.

Exit codes: 0 done, 2 bad spec or dataset, 3 the supervisor went away (orphaned: stop, do not
train on unwatched), anything else a crash.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

ATTENTION_PROJECTIONS = ["to_q", "to_k", "to_v", "to_out.0"]
LORA_FILENAME = "pytorch_lora_weights.safetensors"


class SpecError(Exception):
    """The spec or the dataset cannot be trained on; the message says why."""


class ProgressChannel:
    """JSON lines to the supervisor; a closed pipe (supervisor gone) ends the trainer."""

    def __init__(self, fd: int | None):
        self._stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8") if fd is not None else None

    def send(self, event: str, **fields: Any) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(json.dumps({"event": event, **fields}) + "\n")
        except BrokenPipeError:
            os._exit(3)


def watch_parent() -> None:
    """Exit when the supervising worker dies (its SIGKILL would otherwise leave this running).

    The supervisor names itself in IMAGINEER_SUPERVISOR_PID, so a worker killed before this
    thread started is noticed too (our parent is then already someone else).
    """
    parent = int(os.environ.get("IMAGINEER_SUPERVISOR_PID") or os.getppid())

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                print("The supervising worker went away; stopping.", flush=True)
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def load_dataset(dataset_dir: Path) -> list[tuple[Path, str]]:
    manifest = dataset_dir / "metadata.jsonl"
    if not manifest.is_file():
        raise SpecError("The dataset has no metadata.jsonl.")
    items = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        path = dataset_dir / entry["file_name"]
        if not path.is_file():
            raise SpecError(f"metadata.jsonl line {number}: its image file is missing.")
        items.append((path, entry["text"]))
    if not items:
        raise SpecError("The dataset is empty.")
    return items


def prepare_pixels(path: Path, resolution: int, center_crop: bool, flip: bool, rng: random.Random):
    """An image as a CHW float tensor in [-1, 1]: shorter side resized, cropped square, maybe flipped."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as source:
        image = source.convert("RGB")
    width, height = image.size
    scale = resolution / min(width, height)
    image = image.resize(
        (max(resolution, round(width * scale)), max(resolution, round(height * scale))), Image.Resampling.BILINEAR
    )
    width, height = image.size
    if center_crop:
        left, top = (width - resolution) // 2, (height - resolution) // 2
    else:
        left, top = rng.randint(0, width - resolution), rng.randint(0, height - resolution)
    image = image.crop((left, top, left + resolution, top + resolution))
    if flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


class Batches:
    """Endless shuffled batches over the dataset, reshuffled every epoch (seeded)."""

    def __init__(self, items, tokenizer, params: dict, rng: random.Random):
        self.items, self.tokenizer, self.params, self.rng = items, tokenizer, params, rng
        self.order: list[int] = []

    def next(self):
        import torch

        size = self.params["batch_size"]
        picked = []
        while len(picked) < size:
            if not self.order:
                self.order = list(range(len(self.items)))
                self.rng.shuffle(self.order)
            picked.append(self.items[self.order.pop()])
        pixels = torch.stack(
            [
                prepare_pixels(
                    path, self.params["resolution"], self.params["center_crop"], self.params["random_flip"], self.rng
                )
                for path, _ in picked
            ]
        )
        ids = self.tokenizer(
            [caption for _, caption in picked],
            max_length=self.tokenizer.model_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return pixels, ids


def choose_device(wanted: str) -> str:
    import torch

    if wanted in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def save_lora(unet, folder: Path) -> Path:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    # The adapter's own config (rank, alpha, targets) travels in the file's metadata, so a loader
    # applies alpha/rank scaling as trained rather than guessing alpha = rank.
    StableDiffusionPipeline.save_lora_weights(
        save_directory=str(folder),
        unet_lora_layers=layers,
        safe_serialization=True,
        unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
    )
    return folder / LORA_FILENAME


def train(spec: dict, progress: ProgressChannel) -> None:
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig
    from transformers import CLIPTextModel, CLIPTokenizer

    params = spec["parameters"]
    model_dir = spec["model"]
    output_dir = Path(spec["output_dir"])
    items = load_dataset(Path(spec["dataset_dir"]))
    seed = int(params["seed"])
    rng = random.Random(seed)
    torch.manual_seed(seed)

    device = choose_device(spec.get("device", "auto"))
    precision = params["mixed_precision"] if device == "cuda" else "no"
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    load = {"local_files_only": spec.get("offline", True)}
    print(f"Loading base model on {device} (mixed precision: {precision}).", flush=True)
    tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer", **load)
    text_encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder", **load)
    vae = AutoencoderKL.from_pretrained(model_dir, subfolder="vae", **load)
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet", **load)
    noise_scheduler = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler", **load)
    for frozen in (unet, vae, text_encoder):
        frozen.requires_grad_(False)
    unet.to(device, dtype=weight_dtype)
    vae.to(device, dtype=weight_dtype)
    text_encoder.to(device, dtype=weight_dtype)
    unet.add_adapter(
        LoraConfig(
            r=params["rank"],
            lora_alpha=params["alpha"],
            init_lora_weights="gaussian",
            target_modules=ATTENTION_PROJECTIONS,
        )
    )
    if weight_dtype != torch.float32:
        cast_training_params(unet, dtype=torch.float32)  # the adapters learn in fp32; frozen weights stay half
    trainable = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params["learning_rate"])
    warmup = params["warmup_steps"]
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: min(1.0, (done + 1) / warmup) if warmup else 1.0
    )
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    batches = Batches(items, tokenizer, params, rng)
    total, accumulate = params["steps"], params["gradient_accumulation_steps"]
    scaling = vae.config.scaling_factor
    unet.train()
    progress.send("started", total=total, images=len(items), device=device, precision=precision, seed=seed)
    print(
        f"Training {total} steps on {len(items)} images (rank {params['rank']}, alpha {params['alpha']}).", flush=True
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    loss_value = math.nan
    for step in range(1, total + 1):
        optimizer.zero_grad(set_to_none=True)
        loss_value = 0.0
        for _ in range(accumulate):
            pixels, input_ids = batches.next()
            with torch.no_grad():
                latents = vae.encode(pixels.to(device, dtype=weight_dtype)).latent_dist.sample() * scaling
                hidden = text_encoder(input_ids.to(device), return_dict=False)[0]
            noise = torch.randn_like(latents)
            timesteps = torch.randint(
                0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=device
            ).long()
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(latents, noise, timesteps)
            else:
                target = noise
            with torch.autocast(device_type=device, dtype=weight_dtype, enabled=precision != "no"):
                predicted = unet(noisy, timesteps, hidden, return_dict=False)[0]
            loss = F.mse_loss(predicted.float(), target.float()) / accumulate
            (scaler.scale(loss) if scaler else loss).backward()
            loss_value += loss.item()
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr_schedule.step()
        elapsed = time.perf_counter() - started
        progress.send("step", step=step, total=total, loss=loss_value, lr=lr_schedule.get_last_lr()[0], elapsed=elapsed)
        print(f"step {step}/{total} loss {loss_value:.6f}", flush=True)
        every = params["save_every_steps"]
        if every and step % every == 0 and step < total:
            saved = save_lora(unet, output_dir / f"checkpoint-{step}")
            progress.send("checkpoint", step=step, loss=loss_value, file=str(saved.relative_to(output_dir)))
            print(f"Saved the checkpoint of step {step}.", flush=True)
    saved = save_lora(unet, output_dir)
    summary: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 3)}
    if device == "cuda":
        summary["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    progress.send("done", step=total, loss=loss_value, file=saved.name, **summary)
    print(f"Done: final loss {loss_value:.6f}.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON spec written by the supervisor")
    parser.add_argument("--progress-fd", type=int, default=None, help="pipe for JSON progress events")
    args = parser.parse_args(argv)
    watch_parent()
    progress = ProgressChannel(args.progress_fd)
    try:
        spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
        train(spec, progress)
    except SpecError as exc:
        print(f"Cannot train: {exc}", flush=True)
        progress.send("error", message=str(exc))
        return 2
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown of torch and friends (about a second, nothing to save):
    # every file is closed and both channels are flushed by now.
    os._exit(code)
