"""Reading LoRA files without loading them: is it a LoRA, for which model family?

Only the safetensors header is read (key names and tensor shapes), so a file is never executed or
fully loaded to decide. Pickles (.ckpt/.pt/.bin) are refused outright: they can run code on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generation.models import ModelFamily

# Cross-attention width of the UNet (the text-embedding size a LoRA's attn2.to_k/to_v consumes).
CROSS_ATTENTION_FAMILY = {768: ModelFamily.SD1, 1024: ModelFamily.SD2, 2048: ModelFamily.SDXL}
LORA_MARKERS = (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".lora.down.", ".lora.up.")
DOWN_MARKERS = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight")


class NotALora(ValueError):
    """The file is not a LoRA we can use; the message says why."""


@dataclass(frozen=True)
class LoraInfo:
    family: str | None  # None when the file is a LoRA but its family cannot be told from its shapes
    key_format: str  # kohya | diffusers
    rank: int
    cross_attention_dim: int | None
    tensors: int


def inspect_lora(path: Path | str) -> LoraInfo:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise NotALora(f"{path.name}: only .safetensors LoRA files are accepted (pickled formats can run code).")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise NotALora(f"{path.name}: not a readable safetensors file ({type(exc).__name__}).") from exc
    if not shapes:
        raise NotALora(f"{path.name}: the file holds no tensors.")
    keys = list(shapes)
    if any("hada_" in k for k in keys):
        raise NotALora(f"{path.name}: a LyCORIS (LoHa) adapter, not a LoRA; not supported.")
    if any("lokr_" in k for k in keys):
        raise NotALora(f"{path.name}: a LyCORIS (LoKr) adapter, not a LoRA; not supported.")
    lora_keys = [k for k in keys if any(m in k for m in LORA_MARKERS)]
    if not lora_keys:
        raise NotALora(f"{path.name}: no LoRA weights (lora_up/lora_down or lora_A/lora_B) in the file.")
    key_format = "kohya" if any(k.startswith(("lora_unet_", "lora_te")) for k in lora_keys) else "diffusers"
    downs = [k for k in lora_keys if k.endswith(DOWN_MARKERS)]
    rank = max((shapes[k][0] for k in downs), default=0)
    cross_dim = None
    for key in downs:
        normalized = key.replace("_", ".")
        if "attn2" in normalized and ("to.k" in normalized or "to.v" in normalized):
            cross_dim = shapes[key][1]
            break
    if any(k.startswith(("lora_te1_", "lora_te2_")) or "text_encoder_2" in k for k in keys):
        family = ModelFamily.SDXL
    else:
        family = CROSS_ATTENTION_FAMILY.get(cross_dim)
    return LoraInfo(family=family, key_format=key_format, rank=rank, cross_attention_dim=cross_dim, tensors=len(keys))
