"""The local NSFW detector: real NudeNet (its ONNX model ships in the wheel) on real images."""

import io

import pytest
from PIL import Image as PILImage

from albums.services import store_image
from imagineer.core.models import JobStatus
from labeling import services
from labeling.labelers import default_labeler_name
from labeling.labelers.nudenet import NudeNetLabeler, rate_detections
from labeling.models import LabelerResult
from tests.factories import scene_png
from tests.labeling.helpers import run_now

pytestmark = pytest.mark.django_db


def test_nudenet_is_the_default_without_an_api_key(settings):
    settings.ANTHROPIC_API_KEY = ""
    assert default_labeler_name() == "nudenet"
    settings.ANTHROPIC_API_KEY = "sk-ant-x"
    assert default_labeler_name() == "claude"
    settings.IMAGINEER_LABELER = "nudenet"
    assert default_labeler_name() == "nudenet"


def test_real_nudenet_rates_a_harmless_scene_safe_and_writes_no_captions(admin_client_api):
    image, _ = store_image(io.BytesIO(scene_png()), original_filename="house.png")
    response = admin_client_api.post(f"/api/images/{image.pk}/label/", {})  # no key: NudeNet by default
    assert response.status_code == 202, response.content
    assert response.json()["labeler"] == "nudenet"
    from labeling.models import LabelingRun

    run = run_now(LabelingRun.objects.get(pk=response.json()["id"]))
    assert run.status == JobStatus.SUCCEEDED and run.succeeded_count == 1, run.failures
    result = LabelerResult.objects.get(image=image, labeler="nudenet")
    assert result.nsfw_rating == "SAFE" and result.source_model == "nudenet-320n"
    image.refresh_from_db()
    assert image.nsfw_rating == "SAFE" and image.is_nsfw is False
    assert not image.labels.exists()  # NudeNet writes no captions or tags
    assert run.input_tokens == 0


def test_real_nudenet_reads_every_stored_format():
    labeler = NudeNetLabeler()
    for mode in ("RGB", "RGBA", "L", "P"):
        picture = PILImage.open(io.BytesIO(scene_png())).convert(mode)
        assert labeler.label(picture).nsfw_rating == "SAFE"


@pytest.mark.parametrize(
    "detections, expected",
    [
        ([], ("SAFE", None)),
        ([{"class": "FACE_FEMALE", "score": 0.99}, {"class": "FEET_EXPOSED", "score": 0.9}], ("SAFE", None)),
        ([{"class": "MALE_BREAST_EXPOSED", "score": 0.9}], ("SAFE", None)),
        ([{"class": "BELLY_EXPOSED", "score": 0.7}], ("SUGGESTIVE", 0.7)),
        ([{"class": "FEMALE_BREAST_COVERED", "score": 0.49}], ("SAFE", None)),  # under the threshold
        ([{"class": "FEMALE_BREAST_EXPOSED", "score": 0.8}, {"class": "BELLY_EXPOSED", "score": 0.9}], ("ADULT", 0.8)),
        ([{"class": "BUTTOCKS_EXPOSED", "score": 0.6}], ("ADULT", 0.6)),
        (
            [{"class": "FEMALE_GENITALIA_EXPOSED", "score": 0.55}, {"class": "FEMALE_BREAST_EXPOSED", "score": 0.9}],
            ("EXPLICIT", 0.55),
        ),
        ([{"class": "ANUS_EXPOSED", "score": 0.51}], ("EXPLICIT", 0.51)),
    ],
)
def test_detections_map_to_ratings_by_the_documented_rule(detections, expected):
    assert rate_detections(detections) == expected


def test_thresholds_come_from_settings(settings):
    settings.IMAGINEER_NUDENET_ADULT_THRESHOLD = 0.9
    assert rate_detections([{"class": "BUTTOCKS_EXPOSED", "score": 0.8}])[0] == "SAFE"


def test_adult_detection_flags_the_image_nsfw(monkeypatch):
    """The rating a detector gives reaches is_nsfw (detections injected: we ship no nude test images)."""
    image, _ = store_image(io.BytesIO(scene_png()), original_filename="x.png")
    monkeypatch.setattr(
        NudeNetLabeler,
        "__init__",
        lambda self: setattr(
            self, "detector", _Fixed([{"class": "BUTTOCKS_EXPOSED", "score": 0.8, "box": [0, 0, 1, 1]}])
        ),
    )
    run = run_now(services.start_labeling_run(image_ids=[image.pk], labeler="nudenet"))
    assert run.succeeded_count == 1
    image.refresh_from_db()
    assert image.is_nsfw is True and image.nsfw_rating == "ADULT"
    assert image.nsfw_changes.get().labeler == "nudenet:nudenet-320n"


class _Fixed:
    def __init__(self, detections):
        self.detections = detections

    def detect(self, pixels):
        assert pixels.ndim == 3 and pixels.shape[2] == 4  # NudeNet gets RGBA pixels
        return self.detections
