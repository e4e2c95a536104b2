"""The Claude labeler: the real anthropic SDK against a fake Messages API on 127.0.0.1."""

import base64
import io
import json
import time

import pytest
from PIL import Image as PILImage

from albums.models import NsfwFlagSource
from albums.services import set_image_flags, store_image
from imagineer.core.models import JobStatus
from labeling import services
from labeling.labelers.base import LabelingFailed
from labeling.labelers.claude import parse_answer, prepare_image
from labeling.models import Label, LabelingRun, LabelSource, LabelType
from tests.assertions import assert_envelope
from tests.factories import image_bytes, make_image
from tests.labeling.fake_claude import Reply, answer, error, message_body
from tests.labeling.helpers import label_snapshot, run_now

pytestmark = pytest.mark.django_db

GOOD = answer(
    caption="A  watercolor painting of a mountain lake at dawn, soft pink light.",
    tags=["Watercolor", "mountain lake", "soft   pink light", "watercolor"],
    rating="SAFE",
)


def label_with_claude(image, **kwargs):
    return run_now(services.start_labeling_run(image_ids=[image.pk], labeler="claude", **kwargs))


def test_good_answer_stores_caption_tags_and_rating(fake_claude):
    fake_claude.then(GOOD)
    image = make_image()
    run = label_with_claude(image)
    assert run.status == JobStatus.SUCCEEDED, run.error_message
    assert (run.succeeded_count, run.failed_count) == (1, 0)
    labels = {(label.label_type, label.text) for label in image.labels.all()}
    # Multi-word tags stay whole; tags are normalised (case, spaces) and de-duplicated.
    assert labels == {
        (LabelType.CAPTION, "A watercolor painting of a mountain lake at dawn, soft pink light."),
        (LabelType.TAG, "watercolor"),
        (LabelType.TAG, "mountain lake"),
        (LabelType.TAG, "soft pink light"),
    }
    assert set(image.labels.values_list("source", "source_model").distinct()) == {
        (LabelSource.CLAUDE, "claude-test-model")
    }
    image.refresh_from_db()
    assert image.nsfw_rating == "SAFE" and image.is_nsfw is False
    assert image.labeler_results.get().nsfw_rating == "SAFE"
    # Token usage is recorded on the run.
    assert (run.input_tokens, run.output_tokens) == (1200, 80)


def test_request_is_a_vision_message_with_a_resized_base64_image(fake_claude, settings):
    settings.IMAGINEER_CLAUDE_MAX_IMAGE_SIDE = 64
    fake_claude.then(GOOD)
    image, _ = store_image(io.BytesIO(image_bytes("PNG", size=(300, 120))), original_filename="wide.png")
    label_with_claude(image)
    request = fake_claude.requests[0]
    assert request["path"] == "/v1/messages"
    headers = request["headers"]
    # The key travels as the SDK sends it (this SDK version: a bearer token; older: x-api-key).
    assert "sk-ant-test-not-a-real-key" in headers.get("x-api-key", "") + headers.get("authorization", "")
    body = request["json"]
    assert body["model"] == "claude-test-model"
    content = body["messages"][0]["content"]
    picture = next(block for block in content if block["type"] == "image")
    assert picture["source"]["type"] == "base64" and picture["source"]["media_type"] == "image/jpeg"
    sent = PILImage.open(io.BytesIO(base64.b64decode(picture["source"]["data"])))
    assert max(sent.size) == 64 and sent.size == (64, 26)  # longest side within the limit, aspect kept
    prompt = next(block for block in content if block["type"] == "text")["text"]
    assert '"nsfw_rating"' in prompt and "EXPLICIT" in prompt


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Here is the caption: a lake.", "not one JSON object"),
        ('["a lake"]', "not an object"),
        ('{"caption": "a lake", "tags": ["lake"]}', "lacks nsfw_rating"),
        ('{"caption": "a lake", "tags": "lake, water", "nsfw_rating": "SAFE"}', "tags are not a list"),
        ('{"caption": "", "tags": ["lake"], "nsfw_rating": "SAFE"}', "caption is empty"),
        ('{"caption": "a lake", "tags": ["lake"], "nsfw_rating": "UNSAFE"}', "is not one of"),
        ('{"caption": "a lake", "tags": ["lake"], "nsfw_rating": "SAFE"', "not one JSON object"),
    ],
)
def test_malformed_answer_fails_the_image_and_changes_nothing(fake_claude, text, reason):
    image = make_image()
    Label.objects.create(image=image, text="kept", label_type=LabelType.MANUAL)
    before = label_snapshot(image)
    fake_claude.then(Reply(200, message_body(text, input_tokens=50, output_tokens=7)))
    run = label_with_claude(image)
    assert run.status == JobStatus.FAILED
    assert run.failed_count == 1 and run.succeeded_count == 0
    assert run.failures[0]["image_id"] == image.pk and reason in run.failures[0]["error"]
    assert reason in run.error_message
    assert label_snapshot(image) == before
    assert (run.input_tokens, run.output_tokens) == (50, 7)  # spent tokens are still counted


def test_answer_cut_off_at_max_tokens_is_a_partial_answer(fake_claude):
    image = make_image()
    before = label_snapshot(image)
    fake_claude.then(Reply(200, message_body('{"caption": "a la', stop_reason="max_tokens")))
    run = label_with_claude(image)
    assert run.failed_count == 1 and "cut off" in run.failures[0]["error"]
    assert label_snapshot(image) == before


def test_fenced_json_is_accepted():
    caption, tags, rating = parse_answer('```json\n{"caption": "x", "tags": ["a b"], "nsfw_rating": "adult"}\n```')
    assert (caption, tags, rating) == ("x", ("a b",), "ADULT")


def test_rate_limited_then_success_retries_and_stores(fake_claude):
    fake_claude.then(error(429, "rate_limit_error", "slow down", retry_after_ms=20), GOOD)
    image = make_image()
    run = label_with_claude(image)
    assert run.status == JobStatus.SUCCEEDED and run.succeeded_count == 1
    assert len(fake_claude.requests) == 2
    assert image.labels.filter(label_type=LabelType.CAPTION).count() == 1


def test_overloaded_then_success_retries(fake_claude):
    fake_claude.then(error(529, "overloaded_error", "Overloaded", retry_after_ms=10), GOOD)
    run = label_with_claude(make_image())
    assert run.succeeded_count == 1 and len(fake_claude.requests) == 2


def test_server_error_forever_fails_after_retries_with_back_off(fake_claude):
    fake_claude.then(error(500, "api_error", "Internal server error"))
    image = make_image()
    before = label_snapshot(image)
    started = time.monotonic()
    run = label_with_claude(image)
    elapsed = time.monotonic() - started
    assert run.status == JobStatus.FAILED and run.failed_count == 1
    assert len(fake_claude.requests) == 3  # the first try and IMAGINEER_CLAUDE_MAX_RETRIES (2) retries
    assert "answered 500" in run.failures[0]["error"] and "Internal server error" in run.failures[0]["error"]
    assert elapsed >= 0.5 * 0.75 + 1.0 * 0.75  # exponential back-off between tries (with jitter)
    assert label_snapshot(image) == before


def test_timeout_fails_the_image_with_the_reason(fake_claude, settings):
    settings.IMAGINEER_CLAUDE_TIMEOUT_SECONDS = 0.3
    settings.IMAGINEER_CLAUDE_MAX_RETRIES = 1
    slow = answer()
    slow.delay = 2.0
    fake_claude.then(slow)
    image = make_image()
    before = label_snapshot(image)
    run = label_with_claude(image)
    assert run.status == JobStatus.FAILED
    assert "did not answer within 0.3 s" in run.failures[0]["error"]
    assert len(fake_claude.requests) == 2
    assert label_snapshot(image) == before


def test_one_bad_image_does_not_stop_the_run(fake_claude):
    good, bad, also_good = make_image(), make_image(), make_image()
    fake_claude.then(GOOD, Reply(200, message_body("no json here")), GOOD)
    run = run_now(services.start_labeling_run(image_ids=[good.pk, bad.pk, also_good.pk], labeler="claude"))
    assert run.status == JobStatus.SUCCEEDED
    assert (run.succeeded_count, run.failed_count, run.progress_current) == (2, 1, 3)
    assert [f["image_id"] for f in run.failures] == [bad.pk]
    assert good.labels.exists() and also_good.labels.exists() and not bad.labels.exists()


def test_relabeling_replaces_its_own_labels_and_keeps_manual_ones(fake_claude):
    image = make_image()
    manual = Label.objects.create(image=image, text="mountain lake", label_type=LabelType.TAG)
    fake_claude.then(GOOD)
    label_with_claude(image)
    first = image.labels.count()
    fake_claude.script = [answer(caption="A lake.", tags=["lake", "mountain lake"], rating="SAFE")]
    label_with_claude(image, force=True)
    rows = list(image.labels.values_list("label_type", "text", "source"))
    assert sorted(rows) == sorted(
        [
            (LabelType.CAPTION, "A lake.", LabelSource.CLAUDE),
            (LabelType.TAG, "lake", LabelSource.CLAUDE),
            (LabelType.TAG, "mountain lake", LabelSource.MANUAL),  # the person's tag, not a copy
        ]
    )
    assert first == 4  # caption + watercolor + soft pink light + the manual mountain lake (not doubled)
    manual.refresh_from_db()
    assert manual.source == LabelSource.MANUAL
    # Labeling the same answer again does not duplicate anything either.
    label_with_claude(image, force=True)
    assert image.labels.count() == 3


def test_adult_rating_flags_nsfw_unless_an_admin_decided(fake_claude, admin_user):
    flagged, decided = make_image(), make_image()
    set_image_flags([decided.pk], is_nsfw=False, user=admin_user)
    fake_claude.then(answer(rating="ADULT"))
    run_now(services.start_labeling_run(image_ids=[flagged.pk, decided.pk], labeler="claude"))
    flagged.refresh_from_db()
    decided.refresh_from_db()
    assert flagged.is_nsfw is True and flagged.nsfw_flag_source == NsfwFlagSource.MACHINE
    change = flagged.nsfw_changes.get()
    assert change.source == NsfwFlagSource.MACHINE and change.labeler == "claude:claude-test-model"
    assert change.rating == "ADULT" and change.labeling_run_id is not None
    # The admin's "not NSFW" wins over the machine's ADULT; the rating is still recorded.
    assert decided.is_nsfw is False and decided.nsfw_rating == "ADULT"


def test_claude_without_a_key_is_refused_at_start(admin_client_api):
    image = make_image()
    error_body = assert_envelope(
        admin_client_api.post(f"/api/images/{image.pk}/label/", {"labeler": "claude"}), 400, "labeler_unavailable"
    )
    assert "ANTHROPIC_API_KEY" in error_body["message"]
    assert not LabelingRun.objects.exists()


def test_parse_answer_rejects_too_many_tags():
    with pytest.raises(LabelingFailed, match="at most"):
        parse_answer(json.dumps({"caption": "x", "tags": [f"t{i}" for i in range(41)], "nsfw_rating": "SAFE"}))


def test_prepare_image_flattens_transparency_and_keeps_small_images():
    rgba = PILImage.new("RGBA", (40, 30), (255, 0, 0, 0))
    media_type, data = prepare_image(rgba, 1568)
    sent = PILImage.open(io.BytesIO(base64.b64decode(data)))
    assert media_type == "image/jpeg" and sent.mode == "RGB" and sent.size == (40, 30)
