"""Claude as a labeler: the official `anthropic` SDK, one vision message per image.

The answer must be one JSON object {"caption", "tags", "nsfw_rating"}; anything else (prose, a
missing key, a rating outside the four, an answer cut off at max_tokens) fails that image with the
reason and changes nothing on it. Retries with back-off on 429, 5xx and `overloaded` (529) are the
SDK's own (`max_retries`; it honours Retry-After), so they are not written again here.
"""

from __future__ import annotations

import base64
import io
import json
import re

from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps

from albums.models import NsfwRating
from imagineer.core.runtime_config import get_runtime_config
from labeling.labelers.base import Labeler, LabelingFailed, LabelResult
from labeling.models import LABEL_TEXT_MAX, TAG_TEXT_MAX, LabelerName

MAX_TAGS = 40

PROMPT = """You are labeling an image for a Stable Diffusion training dataset and for content moderation.

Answer with exactly one JSON object and nothing else (no prose, no code fence), with these keys:
- "caption": one detailed paragraph usable as a Stable Diffusion training caption: subject, \
composition, style, medium, lighting and colours, stated factually.
- "tags": a list of 5 to 20 short descriptive tag phrases, lower case. A tag may have several words \
("red hair", "oil painting"); keep each phrase whole.
- "nsfw_rating": exactly one of "SAFE", "SUGGESTIVE", "ADULT", "EXPLICIT".
  SAFE: nothing sexual or nude. SUGGESTIVE: revealing clothing or a sexualised pose, no nudity.
  ADULT: nudity (e.g. exposed breasts or buttocks) without sexual activity. EXPLICIT: exposed \
genitals or sexual activity.

Example: {"caption": "A watercolor painting of ...", "tags": ["watercolor", "mountain lake"], \
"nsfw_rating": "SAFE"}"""

FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def prepare_image(image: PILImage.Image, max_side: int) -> tuple[str, str]:
    """(media_type, base64 data): upright, RGB, longest side at most `max_side`, as JPEG."""
    img = ImageOps.exif_transpose(image)
    if img.mode in ("RGBA", "LA") or "transparency" in img.info:
        img = img.convert("RGBA")
        background = PILImage.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        img = background
    elif img.mode != "RGB":
        img = img.convert("RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return "image/jpeg", base64.b64encode(out.getvalue()).decode("ascii")


def _normalise_tag(tag: str) -> str:
    return " ".join(tag.split()).lower()


def parse_answer(text: str) -> tuple[str, tuple[str, ...], str]:
    """(caption, tags, rating) from Claude's answer; LabelingFailed saying what is wrong otherwise."""
    body = text.strip()
    fenced = FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        answer = json.loads(body)
    except json.JSONDecodeError as exc:
        raise LabelingFailed(f"Claude's answer is not one JSON object ({exc.msg} at character {exc.pos}).") from exc
    if not isinstance(answer, dict):
        raise LabelingFailed(f"Claude's answer is JSON but a {type(answer).__name__}, not an object.")
    missing = [key for key in ("caption", "tags", "nsfw_rating") if key not in answer]
    if missing:
        raise LabelingFailed(f"Claude's answer lacks {', '.join(missing)}.")

    caption = answer["caption"]
    if not isinstance(caption, str) or not caption.strip():
        raise LabelingFailed("Claude's caption is empty or not text.")
    caption = " ".join(caption.split())
    if len(caption) > LABEL_TEXT_MAX:
        raise LabelingFailed(f"Claude's caption is {len(caption)} characters, over the {LABEL_TEXT_MAX} limit.")

    raw_tags = answer["tags"]
    if not isinstance(raw_tags, list) or not all(isinstance(tag, str) for tag in raw_tags):
        raise LabelingFailed("Claude's tags are not a list of strings.")
    tags = tuple(dict.fromkeys(t for t in (_normalise_tag(tag) for tag in raw_tags) if t))
    too_long = [tag for tag in tags if len(tag) > TAG_TEXT_MAX]
    if too_long:
        raise LabelingFailed(f"Claude gave a tag over {TAG_TEXT_MAX} characters: {too_long[0][:40]!r}…")
    if len(tags) > MAX_TAGS:
        raise LabelingFailed(f"Claude gave {len(tags)} tags; at most {MAX_TAGS} are accepted.")

    rating = answer["nsfw_rating"]
    accepted = [choice.value for choice in NsfwRating]
    # Exact match only: the earlier version matched substrings, so "UNSAFE" read as SAFE.
    if not isinstance(rating, str) or rating.strip().upper() not in accepted:
        raise LabelingFailed(f"Claude's nsfw_rating {rating!r} is not one of {', '.join(accepted)}.")
    return caption, tags, rating.strip().upper()


class ClaudeLabeler(Labeler):
    name = LabelerName.CLAUDE
    writes_captions = True

    def __init__(self) -> None:
        import anthropic  # build_labeler has checked that a key is set

        self._anthropic = anthropic
        # One snapshot of the runtime config per labeler (one per run): a run does not change
        # model or limits halfway when an operator edits the file.
        self.config = get_runtime_config().labeling
        self.source_model = self.config.claude_model
        self.client = anthropic.Anthropic(
            api_key=settings.ANTHROPIC_API_KEY,
            base_url=settings.ANTHROPIC_BASE_URL or None,
            timeout=self.config.claude_timeout_seconds,
            max_retries=self.config.claude_max_retries,
        )

    def label(self, image: PILImage.Image) -> LabelResult:
        media_type, data = prepare_image(image, self.config.claude_max_image_side)
        anthropic = self._anthropic
        try:
            message = self.client.messages.create(
                model=self.source_model,
                max_tokens=self.config.claude_max_tokens,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}},
                            {"type": "text", "text": PROMPT},
                        ],
                    }
                ],
            )
        except anthropic.APITimeoutError as exc:
            raise LabelingFailed(
                f"Claude did not answer within {self.config.claude_timeout_seconds} s "
                f"(tried {self.config.claude_max_retries + 1} times)."
            ) from exc
        except anthropic.APIStatusError as exc:
            retried = exc.status_code == 429 or exc.status_code >= 500  # what the SDK retries
            tries = f" (after {self.config.claude_max_retries} retries)" if retried else ""
            raise LabelingFailed(f"The Claude API answered {exc.status_code}{tries}: {_api_message(exc)}") from exc
        except anthropic.APIConnectionError as exc:
            raise LabelingFailed("The Claude API could not be reached.") from exc

        usage = getattr(message, "usage", None)
        input_tokens = getattr(usage, "input_tokens", 0) or 0
        output_tokens = getattr(usage, "output_tokens", 0) or 0
        if message.stop_reason == "max_tokens":
            raise LabelingFailed(
                f"Claude's answer was cut off at max_tokens ({self.config.claude_max_tokens}): a partial answer.",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
            )
        text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
        try:
            caption, tags, rating = parse_answer(text)
        except LabelingFailed as exc:
            raise LabelingFailed(str(exc), input_tokens=input_tokens, output_tokens=output_tokens) from exc
        return LabelResult(
            nsfw_rating=rating, caption=caption, tags=tags, input_tokens=input_tokens, output_tokens=output_tokens
        )


def _api_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
    return str(getattr(exc, "message", "") or exc)[:300]
