"""Generation metadata inside the PNG, in the form other tools read.

`parameters` text chunk in AUTOMATIC1111's format (read by A1111's PNG Info, InvokeAI, ComfyUI
loaders and Civitai), and an `imagineer` chunk with the full parameters as JSON. LoRAs appear as
A1111 writes them: `<lora:name:weight>` tags in the prompt line and a `Lora hashes` entry.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

# A1111's own pattern for `key: value` pairs (values with commas are double-quoted).
PARAM_RE = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
# A weight is a number ("0.6", "-1", ".5"); "<lora:x:.>" is not a LoRA tag and stays prompt text.
LORA_TAG_RE = re.compile(r"<lora:([^:>]+):(-?(?:\d+\.?\d*|\.\d+))>")


def _quote(value: str) -> str:
    return json.dumps(value) if ("," in value or ":" in value or '"' in value) else value


def a1111_parameters(p: dict[str, Any]) -> str:
    """The `parameters` text for one image. `p` holds prompt, negative_prompt, steps, sampler,
    guidance_scale, seed, width, height, model, loras [{name, weight, sha256}]."""
    tags = "".join(f" <lora:{lora['name']}:{lora['weight']:g}>" for lora in p.get("loras", []))
    lines = [p["prompt"] + tags]
    if p.get("negative_prompt"):
        lines.append(f"Negative prompt: {p['negative_prompt']}")
    fields = [
        ("Steps", p["steps"]),
        ("Sampler", p["sampler"]),
        ("CFG scale", f"{p['guidance_scale']:g}"),
        ("Seed", p["seed"]),
        ("Size", f"{p['width']}x{p['height']}"),
        ("Model", p["model"]),
    ]
    if p.get("loras"):
        hashes = ", ".join(f"{lora['name']}: {lora.get('sha256', '')[:12]}" for lora in p["loras"])
        fields.append(("Lora hashes", hashes))
    fields.append(("Version", "imagineer"))
    lines.append(", ".join(f"{key}: {_quote(str(value))}" for key, value in fields))
    return "\n".join(lines)


def parse_a1111_parameters(text: str) -> dict[str, Any]:
    """Read A1111 `parameters` text back (ours or another tool's) into typed fields."""
    lines = text.strip().split("\n")
    params_line = lines.pop() if lines and PARAM_RE.match(lines[-1]) and "Steps:" in lines[-1] else ""
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    prompt = "\n".join(prompt_lines)
    loras = [{"name": name, "weight": float(weight)} for name, weight in LORA_TAG_RE.findall(prompt)]
    result: dict[str, Any] = {
        "prompt": LORA_TAG_RE.sub("", prompt).strip(),
        "negative_prompt": "\n".join(negative_lines).strip(),
        "loras": loras,
    }
    raw = {}
    for key, value in PARAM_RE.findall(params_line):
        value = value.strip()
        if value.startswith('"') and value.endswith('"'):
            value = json.loads(value)
        raw[key.strip()] = value
    converters = {
        "Steps": ("steps", int),
        "CFG scale": ("guidance_scale", float),
        "Seed": ("seed", int),
        "Sampler": ("sampler", str),
        "Model": ("model", str),
    }
    for key, (name, convert) in converters.items():
        if key in raw:
            try:
                result[name] = convert(raw[key])
            except ValueError:
                pass
    if "Size" in raw and "x" in raw["Size"]:
        width, _, height = raw["Size"].partition("x")
        if width.isdigit() and height.isdigit():
            result["width"], result["height"] = int(width), int(height)
    result["extra"] = {k: v for k, v in raw.items() if k not in converters and k != "Size"}
    return result


def encode_png(image: PILImage.Image, parameters: dict[str, Any]) -> bytes:
    """PNG bytes with the `parameters` (A1111) and `imagineer` (JSON) text chunks."""
    info = PngInfo()
    info.add_text("parameters", a1111_parameters(parameters))
    info.add_text("imagineer", json.dumps(parameters, sort_keys=True))
    out = io.BytesIO()
    # compress_level 1: generated noise-like pixels barely compress, and encoding time is paid per image.
    image.save(out, "PNG", pnginfo=info, compress_level=1)
    return out.getvalue()
