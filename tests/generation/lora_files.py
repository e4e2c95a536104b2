"""LoRA files for tests: a real one trained on nothing (peft adapters on the tiny UNet) and a kohya header."""

from pathlib import Path

import torch
from safetensors.torch import save_file


def make_tiny_lora_file(model, path: Path, *, seed: int, strength: float = 0.5) -> Path:
    """A real LoRA: peft adapters on the tiny UNet's attention layers, saved as diffusers safetensors."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from generation.pipeline.runner import resolve_local_source

    unet = UNet2DConditionModel.from_pretrained(
        str(resolve_local_source(model)), subfolder="unet", local_files_only=True
    )
    torch.manual_seed(seed)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, strength)  # gaussian init leaves B at zero: give the adapter an effect
    path.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        str(path), unet_lora_layers=get_peft_model_state_dict(unet), safe_serialization=True
    )
    return path / "pytorch_lora_weights.safetensors"


def kohya_lora(
    path: Path,
    *,
    cross_dim: int = 768,
    rank: int = 4,
    prefix: str = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0",
) -> Path:
    """A structurally real kohya-format LoRA header (tiny tensors of the real shapes)."""
    tensors = {
        f"{prefix}_attn2_to_k.lora_down.weight": torch.zeros(rank, cross_dim),
        f"{prefix}_attn2_to_k.lora_up.weight": torch.zeros(320, rank),
        f"{prefix}_attn2_to_k.alpha": torch.tensor(float(rank)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path
