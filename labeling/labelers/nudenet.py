"""NudeNet as a local, offline NSFW labeler (its ONNX detector ships inside the pip package).

NudeNet 3.4 detects body parts ({class, score, box}); it has no safe/unsafe classifier, so the
rating is derived from the classes found, by this rule (thresholds in the runtime config's labeling section, default 0.5):

- EXPLICIT   exposed genitals or anus               (IMAGINEER_NUDENET_EXPLICIT_THRESHOLD)
- ADULT      exposed female breasts or buttocks     (IMAGINEER_NUDENET_ADULT_THRESHOLD)
- SUGGESTIVE covered breasts, buttocks, genitals or anus, or an exposed belly
                                                    (IMAGINEER_NUDENET_SUGGESTIVE_THRESHOLD)
- SAFE       none of these (faces, feet, armpits and exposed male chests do not count)

The most severe level that any detection reaches wins; its score is the confidence. It writes no
captions or tags.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from albums.models import NsfwRating
from imagineer.core.runtime_config import get_runtime_config
from labeling.labelers.base import Labeler, LabelerUnavailable, LabelResult
from labeling.models import LabelerName

EXPLICIT_CLASSES = frozenset({"FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED"})
ADULT_CLASSES = frozenset({"FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"})
SUGGESTIVE_CLASSES = frozenset(
    {"FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED", "FEMALE_GENITALIA_COVERED", "ANUS_COVERED", "BELLY_EXPOSED"}
)

_detector = None
_detector_lock = threading.Lock()


def rate_detections(detections: Iterable[dict]) -> tuple[str, float | None]:
    """(rating, confidence) for NudeNet detections, by the rule in this module's docstring."""
    config = get_runtime_config().labeling
    levels = (
        (NsfwRating.EXPLICIT, EXPLICIT_CLASSES, config.nudenet_explicit_threshold),
        (NsfwRating.ADULT, ADULT_CLASSES, config.nudenet_adult_threshold),
        (NsfwRating.SUGGESTIVE, SUGGESTIVE_CLASSES, config.nudenet_suggestive_threshold),
    )
    detections = list(detections)
    for rating, classes, threshold in levels:
        scores = [float(d["score"]) for d in detections if d.get("class") in classes and d["score"] >= threshold]
        if scores:
            return rating, round(max(scores), 4)
    return NsfwRating.SAFE, None


def _shared_detector():
    """One detector per process: the ONNX session is read-only and safe to share between runs."""
    global _detector
    with _detector_lock:
        if _detector is None:
            try:
                from nudenet import NudeDetector
            except ImportError as exc:  # pragma: no cover - nudenet is in requirements.txt
                raise LabelerUnavailable("The 'nudenet' package is not installed on this worker.") from exc
            _detector = NudeDetector()
        return _detector


class NudeNetLabeler(Labeler):
    name = LabelerName.NUDENET
    source_model = "nudenet-320n"
    writes_captions = False

    def __init__(self) -> None:
        self.detector = _shared_detector()

    def label(self, image: PILImage.Image) -> LabelResult:
        # NudeNet expects an RGBA array (it converts RGBA→BGR itself); Pillow decodes every format we store.
        pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))
        detections = self.detector.detect(pixels)
        rating, confidence = rate_detections(detections)
        return LabelResult(
            nsfw_rating=rating,
            confidence=confidence,
            details={"detections": [{"class": d["class"], "score": round(float(d["score"]), 4)} for d in detections]},
        )
