"""Tiny random-weight Stable Diffusion pipelines, built offline from configs.

They have the real architecture (UNet with cross-attention, VAE, CLIP text encoder and tokenizer),
only very small, so every code path — loading with from_pretrained, schedulers, LoRA adapters,
batching, saving — runs for real on a CPU in a fraction of a second. The output is noise.
The tokenizer's vocabulary is written here (printable characters), so nothing is downloaded.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

TINY_UNET_SD = {
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 32,
    "norm_num_groups": 32,
}


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    chars = [c for c in string.printable if not c.isspace()]
    vocab = {}
    for token in [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        model_max_length=77,
        pad_token="<|endoftext|>",
    ), len(vocab)


def _text_encoder(vocab_size: int, hidden: int = 32, projection: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=projection or hidden,
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, num_train_timesteps=1000
    )


def build_tiny_sd(seed: int = 0):
    """A StableDiffusionPipeline (SD 1.x family) with tiny random weights."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer, vocab_size = _tokenizer(Path(tmp))
        return StableDiffusionPipeline(
            unet=UNet2DConditionModel(**TINY_UNET_SD),
            vae=_vae(),
            text_encoder=_text_encoder(vocab_size),
            tokenizer=tokenizer,
            scheduler=_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


def build_tiny_sdxl(seed: int = 0):
    """A StableDiffusionXLPipeline with tiny random weights (two text encoders, added conditioning)."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer, vocab_size = _tokenizer(Path(tmp))
        tokenizer_2, _ = _tokenizer(Path(tmp))
        unet = UNet2DConditionModel(
            **{**TINY_UNET_SD, "cross_attention_dim": 64},
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
        )
        return StableDiffusionXLPipeline(
            unet=unet,
            vae=_vae(),
            text_encoder=_text_encoder(vocab_size, hidden=32),
            text_encoder_2=_text_encoder(vocab_size, hidden=32, projection=32),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            scheduler=_scheduler(),
            force_zeros_for_empty_prompt=True,
        )
