"""The PII scan: the main flows run through the real API with log capture, and no prompt, e-mail,
password, API key or token appears in any line that was written (docs/LOGGING.md).

Flows: sign-in (allauth username/password and e-mail/password, and a failed attempt), upload,
generation (job created over the API, its task delivered in-process and run on the tiny model),
labeling (a Claude run against the local fake Messages API, with a sentinel API key), training
start (a run over the API on captions and trigger words that carry sentinels, its task delivered
in-process: the real trainer on the tiny model) and the legacy import (`manage.py
import_legacy_media`). The training run's own log (what its trainer printed) is scanned too.

What is scanned is what goes to disk: every line the settings' own handler writes (its stream
swapped for a buffer meanwhile; console format under the test settings), the same lines from a
handler with the JSON (production) formatter, and whatever else reached stdout/stderr.
"""

from __future__ import annotations

import importlib
import json
import logging
import uuid
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from generation.models import GenerationJob
from imagineer.core.logging import describe_prompt, get_logger
from imagineer.core.models import JobStatus
from labeling.models import Label, LabelingRun, LabelType
from tests.factories import AdminFactory, image_bytes
from tests.labeling.fake_claude import FakeClaude, answer
from tests.legacy.helpers import png, run_import
from tests.log_capture import LogCapture
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

PROMPT = "zebracorn lighthouse sentinel prompt"
NEGATIVE_PROMPT = "quokkafog sentinel negative prompt"
UPLOAD_PROMPT = "marmosetglow sentinel upload prompt"
LEGACY_PROMPT = "narwhalquill sentinel legacy prompt"
LEGACY_NEGATIVE = "axolotlhaze sentinel legacy negative"
PACK_CAPTION = "pangolindusk sentinel pack caption"
TRAINING_CAPTION = "capybaramist sentinel training caption"
TRAINING_TRIGGER = "okapiflare"
EMAIL = "scan.sentinel.person@example.org"
USERNAME = "scansentinel"
PASSWORD = "Pw-sentinel-7h3x!kq"
WRONG_PASSWORD = "Wrong-sentinel-9z1!mm"
API_KEY = "sk-ant-scan-sentinel-0011223344556677"


@pytest.fixture
def deliver_tasks_now(monkeypatch):
    """An in-process broker and worker: a sent task runs at once, with the headers it was sent with."""

    def send_task(self, name, args=None, kwargs=None, headers=None, **options):
        importlib.import_module(name.rsplit(".", 1)[0])  # the module that registers the task
        task_id = str(uuid.uuid4())
        self.tasks[name].apply(args=args, kwargs=kwargs, task_id=task_id, headers=headers)
        return SimpleNamespace(id=task_id)

    monkeypatch.setattr("celery.app.base.Celery.send_task", send_task)


def legacy_tree(root):
    outputs, packs = root / "outputs", root / "image packs"
    png(outputs / "20250115_123456_scan.png", 11, text={"parameters": f"{LEGACY_PROMPT}\nNegative prompt: x\nSteps: 5"})
    png(outputs / "20250116_101010_sidecar.png", 12)
    (outputs / "20250116_101010_sidecar.json").write_text(
        json.dumps({"prompt": LEGACY_PROMPT, "negative_prompt": LEGACY_NEGATIVE, "seed": 3, "steps": 5})
    )
    png(packs / "Scan Pack" / "ref 1.png", 13)
    (packs / "Scan Pack" / "ref 1.txt").write_text(PACK_CAPTION)
    return outputs, packs


def test_main_flows_write_no_prompt_email_password_key_or_token(
    settings, tmp_path, capfd, deliver_tasks_now, django_capture_on_commit_callbacks, runtime_config_file
):
    from generation import registry
    from generation.pipeline.runner import pipeline_cache

    admin = AdminFactory(username=USERNAME, email=EMAIL, password=PASSWORD)
    token, _ = Token.objects.get_or_create(user=admin)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    registry.ensure_tiny_model("tiny-sd")

    with FakeClaude() as claude, LogCapture() as capture:
        claude.then(answer(caption="A harbour at dusk.", tags=["harbour"], rating="SAFE"))
        settings.ANTHROPIC_API_KEY = API_KEY
        settings.ANTHROPIC_BASE_URL = claude.url
        settings.IMAGINEER_CLAUDE_MODEL = "claude-test-model"
        settings.IMAGINEER_CLAUDE_TIMEOUT_SECONDS = 5.0

        # Sign-in: a failed attempt, then username/password and e-mail/password.
        browser = Client()
        refused = browser.post("/accounts/login/", {"login": USERNAME, "password": WRONG_PASSWORD})
        assert refused.status_code == 200  # the form again, with an error
        signed_in = browser.post("/accounts/login/", {"login": USERNAME, "password": PASSWORD})
        assert signed_in.status_code == 302, signed_in.content[:500]
        by_email = Client().post("/accounts/login/", {"login": EMAIL, "password": PASSWORD}, HTTP_X_REQUEST_ID="rq-1")
        assert by_email.status_code == 302
        assert browser.get("/admin/").status_code == 200

        # Upload, with prompts; a search and a query-string token that must not be echoed into logs.
        upload = api.post(
            "/api/images/",
            {
                "file": SimpleUploadedFile(f"{EMAIL}.png", image_bytes(), content_type="image/png"),
                "prompt": UPLOAD_PROMPT,
                "negative_prompt": NEGATIVE_PROMPT,
            },
            format="multipart",
        )
        assert upload.status_code == 201, upload.content
        image_id = upload.json()["id"]
        assert api.get(f"/api/images/?search={EMAIL}&token={token.key}").status_code == 200

        # Generation: the API queues the job; its task is delivered (in-process) when the row commits.
        with django_capture_on_commit_callbacks(execute=True):
            created = api.post(
                "/api/generation/jobs/",
                {"prompt": PROMPT, "negative_prompt": NEGATIVE_PROMPT, "steps": 2, "width": 64, "height": 64},
                HTTP_X_REQUEST_ID="scan-generation-request",
            )
        assert created.status_code == 202, created.content
        generation = GenerationJob.objects.get(pk=created.json()["id"])
        assert generation.status == JobStatus.SUCCEEDED, generation.error_message
        pipeline_cache.clear()

        # Labeling: a Claude run on the uploaded image, with the sentinel API key.
        with django_capture_on_commit_callbacks(execute=True):
            started = api.post(f"/api/images/{image_id}/label/", {"labeler": "claude"}, format="json")
        assert started.status_code == 202, started.content
        labeling = LabelingRun.objects.get(pk=started.json()["id"])
        assert labeling.status == JobStatus.SUCCEEDED, labeling.error_message
        sent = claude.requests[0]["headers"]
        assert API_KEY in sent.get("x-api-key", "") + sent.get("authorization", "")  # the key was really used

        # Training start: a run on the uploaded image's caption (a sentinel), with sentinel trigger words.
        runtime_config_file.write_text("training:\n  min_captioned_images: 1\n", encoding="utf-8")
        album = api.post("/api/albums/", {"name": "Scan dataset"}, format="json").json()
        added = api.post(f"/api/albums/{album['id']}/images/", {"image_ids": [image_id]}, format="json")
        assert added.status_code == 200, added.content
        Label.objects.create(image_id=image_id, text=TRAINING_CAPTION, label_type=LabelType.CAPTION)
        with django_capture_on_commit_callbacks(execute=True):
            training = api.post(
                "/api/training/runs/",
                {
                    "name": "Scan run",
                    "albums": [album["id"]],
                    "trigger_words": TRAINING_TRIGGER,
                    "steps": 2,
                    "resolution": 64,
                },
                format="json",
            )
        assert training.status_code == 202, training.content
        training_run = TrainingRun.objects.get(pk=training.json()["id"])
        assert training_run.status == JobStatus.SUCCEEDED, training_run.error_message
        with training_run.log_file.open("rb") as handle:
            training_log = handle.read().decode()
        assert "step 2/2" in training_log
        pipeline_cache.clear()

        # Legacy import of a tree whose PNG text and sidecars carry prompts.
        outputs, packs = legacy_tree(tmp_path / "legacy")
        run_import(outputs, packs)

        # The flows above log no sentinel today (by design). These careless lines, of the kinds a
        # future change might add, show the scan would see a leak, and that the redaction step is
        # what stops one: each sentinel below reaches the handlers and must come out redacted.
        careless = get_logger("tests.careless")
        careless.info("generation.debug", prompt=PROMPT, negative_prompt=NEGATIVE_PROMPT, user=EMAIL)
        careless.info("claude.call", headers={"x-api-key": API_KEY, "Authorization": f"Token {token.key}"})
        logging.getLogger("tests.careless").warning("login of %s with password=%s", EMAIL, PASSWORD)
        try:
            raise RuntimeError(f"refused: Authorization: Bearer {token.key} for {EMAIL} (key {API_KEY})")
        except RuntimeError:
            careless.exception("claude.failed")

    written = capfd.readouterr()
    lines = capture.json_lines()
    text = capture.text() + written.out + written.err

    # Not vacuous: request lines for each flow, task and job lines were captured.
    requests = {(ln["method"], ln["path"], ln["status"]) for ln in lines if ln["event"] == "request"}
    assert {
        ("POST", "/accounts/login/", 200),
        ("POST", "/accounts/login/", 302),
        ("POST", "/api/images/", 201),
        ("POST", "/api/generation/jobs/", 202),
        ("POST", f"/api/images/{image_id}/label/", 202),
        ("POST", "/api/training/runs/", 202),
    } <= requests
    assert all("request_id" in ln and "duration_ms" in ln for ln in lines if ln["event"] == "request")
    assert any(ln["event"] == "request" and ln["user_id"] == admin.pk for ln in lines)
    started_jobs = {(ln["job_type"], ln.get("task_name")) for ln in lines if ln["event"] == "job.started"}
    assert {
        ("generation.GenerationJob", "generation.tasks.run_generation_job"),
        ("labeling.LabelingRun", "labeling.tasks.run_labeling_run"),
        ("training.TrainingRun", "training.tasks.train_lora"),
        ("legacy.ImportRun", None),
    } <= started_jobs
    (generation_start,) = [
        ln for ln in lines if ln["event"] == "job.started" and ln["job_type"] == "generation.GenerationJob"
    ]
    assert generation_start["job_id"] == generation.pk
    assert generation_start["request_id"] == "scan-generation-request" and generation_start["task_id"]
    assert any(ln["event"] == "image.stored" for ln in lines)
    assert any(ln["event"] == "legacy.import_done" for ln in lines)
    careless_lines = [ln for ln in lines if ln["logger"] == "tests.careless"]
    assert len(careless_lines) == 4 and describe_prompt(PROMPT) in text  # seen, and redacted
    configured = capture.configured_text()
    assert "job.started" in configured and "path=/api/images/" in configured  # the settings' own handler

    sentinels = {
        "prompt": PROMPT,
        "negative prompt": NEGATIVE_PROMPT,
        "upload prompt": UPLOAD_PROMPT,
        "legacy prompt": LEGACY_PROMPT,
        "legacy negative prompt": LEGACY_NEGATIVE,
        "pack caption (a prompt)": PACK_CAPTION,
        "training caption": TRAINING_CAPTION,
        "training trigger words": TRAINING_TRIGGER,
        "email": EMAIL,
        "email local part": "scan.sentinel.person",
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "api key": API_KEY,
        "api key body": "scan-sentinel-0011",
        "api token": token.key,
    }
    for what, value in sentinels.items():
        for probe in {value, value.split()[0]}:
            assert probe not in text, f"{what} ({probe!r}) appears in the logs"
    assert str(settings.MEDIA_ROOT) not in text and str(settings.DATA_DIR) not in text
    for probe in (TRAINING_CAPTION, TRAINING_TRIGGER, EMAIL, str(settings.DATA_DIR), str(settings.MEDIA_ROOT)):
        assert probe not in training_log, f"{probe!r} appears in the training run's log"
