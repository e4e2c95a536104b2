from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from generation import services
from generation.models import LoraProvenance
from generation.pipeline.service import pipeline_cache


@pytest.fixture
def tiny_model(db):
    """tiny-sd, built once per test process (folder) and registered in this test's database."""
    model = services.ensure_tiny_model("tiny-sd")
    yield model
    pipeline_cache.clear()


def make_tiny_lora_file(model, path: Path, *, seed: int, strength: float = 0.5) -> Path:
    """A real LoRA: peft adapters on the tiny UNet's attention layers, saved as diffusers safetensors."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from generation.pipeline.service import resolve_local_source

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


@pytest.fixture
def tiny_lora(tiny_model, tmp_path):
    def make(name: str, seed: int, strength: float = 0.5):
        file = make_tiny_lora_file(tiny_model, tmp_path / name, seed=seed, strength=strength)
        lora, _ = services.register_lora(file, name=name, family="sd1", provenance=LoraProvenance.UPLOADED)
        return lora

    return make


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
