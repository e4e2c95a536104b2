"""What every labeler answers: a caption, tags and an NSFW rating for one image."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image as PILImage

from imagineer.core.errors import ImagineerError


class LabelerUnavailable(ImagineerError):
    """The labeler cannot run here (no API key, package missing)."""

    code = "labeler_unavailable"


class LabelingFailed(Exception):
    """This image could not be labeled; the message says why. Nothing of the image was changed.

    Tokens an answer cost are still counted on the run, even when the answer was unusable.
    """

    def __init__(self, message: str, *, input_tokens: int = 0, output_tokens: int = 0):
        super().__init__(message)
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


@dataclass(frozen=True)
class LabelResult:
    nsfw_rating: str
    caption: str = ""
    tags: tuple[str, ...] = ()
    confidence: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    details: dict = field(default_factory=dict)


class Labeler:
    """A labeler: one instance per run (so a model or client is loaded once), `label` per image."""

    name: str = ""
    source_model: str = ""
    writes_captions: bool = False

    def label(self, image: PILImage.Image) -> LabelResult:  # pragma: no cover - interface
        raise NotImplementedError
