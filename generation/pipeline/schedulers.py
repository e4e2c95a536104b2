"""Schedulers by the names people know from AUTOMATIC1111 / InvokeAI."""

from __future__ import annotations

from typing import Any

# name → (A1111 sampler label, diffusers class name, extra config)
SCHEDULERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "euler_a": ("Euler a", "EulerAncestralDiscreteScheduler", {}),
    "euler": ("Euler", "EulerDiscreteScheduler", {}),
    "dpmpp_2m": ("DPM++ 2M", "DPMSolverMultistepScheduler", {"use_karras_sigmas": False}),
    "dpmpp_2m_karras": ("DPM++ 2M Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "ddim": ("DDIM", "DDIMScheduler", {}),
    "pndm": ("PNDM", "PNDMScheduler", {"skip_prk_steps": True}),
    "heun": ("Heun", "HeunDiscreteScheduler", {}),
}


def check_scheduler_name(value: str) -> str:
    """The runtime config's check of `generation.scheduler`: a name this module can build."""
    if value not in SCHEDULERS:
        raise ValueError(f"unknown scheduler '{value}'; choose one of {', '.join(sorted(SCHEDULERS))}")
    return value


def scheduler_label(name: str) -> str:
    return SCHEDULERS[name][0]


def build_scheduler(name: str, base_config: dict[str, Any]):
    """A fresh scheduler of this kind from the model's own scheduler config (never a mutated one)."""
    import diffusers

    _, class_name, extra = SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(base_config, **extra)
