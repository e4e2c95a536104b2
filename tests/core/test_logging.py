"""The one logging setup and its one redaction step: prompts, secrets, e-mails, query strings and
filesystem paths never reach a log line; request ids and job ids do (docs/LOGGING.md)."""

import io
import json
import logging
import subprocess
import sys
from datetime import timedelta

import pytest
import structlog
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from rest_framework.authtoken.models import Token

from albums.models import ThumbnailJob
from imagineer import celery as celery_app
from imagineer.core import jobs
from imagineer.core.logging import (
    build_logging_config,
    describe_prompt,
    get_logger,
    parse_logger_levels,
    scrub_text,
)
from imagineer.core.models import JobStatus
from imagineer.core.request_context import bind_request_id, bound_request_id, clear_request_context
from tests.factories import make_image
from tests.processes import ROOT, base_env, celery_worker, wait_for_final_job


def _attach(fmt: str):
    config = build_logging_config(level="INFO", fmt=fmt)
    formatter_spec = dict(config["formatters"]["structured"])
    factory = formatter_spec.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory(**formatter_spec))
    logging.getLogger().addHandler(handler)
    return handler, stream


@pytest.fixture
def rendered_lines():
    """Lines exactly as the configured JSON formatter writes them."""
    handler, stream = _attach("json")
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def console_text():
    """Text exactly as the configured console (development) formatter writes it."""
    handler, stream = _attach("console")
    yield stream.getvalue
    logging.getLogger().removeHandler(handler)


@pytest.fixture(autouse=True)
def _no_leftover_context():
    clear_request_context()
    yield
    clear_request_context()


def test_prompts_secrets_emails_and_paths_are_redacted(rendered_lines, settings):
    get_logger("test").info(
        "generation.started",
        prompt="a secret castle at dawn",
        api_token="tok-123",
        note=f"user bob@example.com stored {settings.MEDIA_ROOT}/images/a.png",
    )
    (line,) = [ln for ln in rendered_lines() if ln["event"] == "generation.started"]
    text = json.dumps(line)
    assert "secret castle" not in text and line["prompt"] == describe_prompt("a secret castle at dawn")
    assert line["api_token"] == "[REDACTED]"
    assert "bob@example.com" not in text and "[email]" in line["note"]
    assert str(settings.MEDIA_ROOT) not in text and "<media>/images/a.png" in line["note"]


def test_secret_fields_by_name_and_nested_values(rendered_lines):
    get_logger("test").info(
        "call.made",
        headers={"Authorization": "Bearer abc", "X-Api-Key": "k-1", "Cookie": "sessionid=s", "Accept": "json"},
        negative_prompt="grey fog",
        prompts=["first secret prompt", "second secret prompt"],
        input_tokens=1200,  # a count, not a credential
        csrftoken="c-1",
    )
    (line,) = [ln for ln in rendered_lines() if ln["event"] == "call.made"]
    assert line["headers"] == {
        "Authorization": "[REDACTED]",
        "X-Api-Key": "[REDACTED]",
        "Cookie": "[REDACTED]",
        "Accept": "json",
    }
    assert line["negative_prompt"] == describe_prompt("grey fog")
    assert "secret prompt" not in json.dumps(line)
    assert line["input_tokens"] == 1200 and line["csrftoken"] == "[REDACTED]"


def test_plain_stdlib_log_calls_pass_the_same_redaction(rendered_lines, settings):
    logging.getLogger("some.library").warning("failed for alice@example.org in %s", settings.DATA_DIR)
    (line,) = [ln for ln in rendered_lines() if ln.get("logger") == "some.library"]
    assert "alice@example.org" not in line["event"] and str(settings.DATA_DIR) not in line["event"]


def test_positional_args_are_merged_then_redacted(rendered_lines):
    """%-args are merged into the message before redaction, from logging and from structlog alike."""
    logging.getLogger("lib.a").info("signed in %s with %s", "carol@example.net", "Authorization: Bearer zz9-top")
    get_logger("lib.b").info("sending %s to %s", "api_key=sk-ant-abcdef123456789", "dave@example.com")
    lines = {ln["logger"]: ln for ln in rendered_lines() if ln.get("logger") in ("lib.a", "lib.b")}
    assert lines["lib.a"]["event"] == "signed in [email] with Authorization: [REDACTED]"
    assert lines["lib.b"]["event"] == "sending api_key=[REDACTED] to [email]"
    assert "positional_args" not in lines["lib.b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123xyz", "Authorization: [REDACTED]"),
        ("sent Bearer eyJhbGciOi.J9x1 upstream", "sent Bearer [REDACTED] upstream"),
        ("header Token 0123456789abcdef0123456789abcdef01234567", "header Token [REDACTED]"),
        ("Token authentication failed", "Token authentication failed"),
        ("retry with api_key=k-123&x=1", "retry with api_key=[REDACTED]&x=1"),
        ("{'password': 'hunter2', 'user': 'x'}", "{'password': [REDACTED], 'user': 'x'}"),
        ('{"client_secret": "s3"}', '{"client_secret": [REDACTED]}'),
        ("Cookie: sessionid=abc; csrftoken=def", "Cookie: [REDACTED]"),
        ("key sk-ant-api03-AbCdEf0123456789 rejected", "key [REDACTED] rejected"),
        ("GET https://example.com/cb?code=abc&state=xyz done", "GET https://example.com/cb?<query> done"),
        ("GET /api/images/?token=abc HTTP/1.1", "GET /api/images/?<query> HTTP/1.1"),
        ("broker redis://:hunter2@cache:6379/0", "broker redis://[REDACTED]@cache:6379/0"),
        ("post https://hooks.slack.com/services/T0/B0/xyz", "post https://hooks.slack.com/services/[REDACTED]"),
        ("{'prompt': 'a castle', 'steps': 3}", f"{{'prompt': '{describe_prompt('a castle')}', 'steps': 3}}"),
        ('kwargs={"set_prompt": "a deck"}', f'kwargs={{"set_prompt": "{describe_prompt("a deck")}"}}'),
        ("used input_tokens=1200 output_tokens=80", "used input_tokens=1200 output_tokens=80"),
        ("mail eve@example.org now", "mail [email] now"),
        ("what? is /start? fine", "what? is /start? fine"),
    ],
)
def test_free_text_redaction(text, expected):
    assert scrub_text(text) == expected


def test_tracebacks_lose_absolute_paths(rendered_lines, settings):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("test").exception("it.failed")
    (line,) = [ln for ln in rendered_lines() if ln["event"] == "it.failed"]
    assert "RuntimeError: boom" in line["exception"]
    assert str(settings.BASE_DIR) not in line["exception"]


def test_tracebacks_lose_secrets_and_emails_in_both_formats(rendered_lines, console_text, settings):
    secret = "sk-ant-traceback0123456789"
    for log in (get_logger("tb.structlog"), logging.getLogger("tb.stdlib")):
        try:
            raise ValueError(f"key {secret} refused for frank@example.com at {settings.MEDIA_ROOT}/x?token=t0k")
        except ValueError:
            log.exception("tb.failed")
    lines = [ln for ln in rendered_lines() if ln["event"] == "tb.failed"]
    assert len(lines) == 2 and all("ValueError: key [REDACTED] refused" in ln["exception"] for ln in lines)
    console = console_text()
    assert console.count("ValueError: key [REDACTED] refused for [email] at <media>/x?<query>") == 2
    for text in (json.dumps(lines), console):
        assert secret not in text and "frank@example.com" not in text and "t0k" not in text
        assert str(settings.MEDIA_ROOT) not in text


def test_console_format_is_readable_and_redacted(console_text):
    get_logger("readable").info("user.seen", email="gina@example.com", password="pw-1", job_id=7)
    text = console_text()
    assert "user.seen" in text and "job_id=7" in text and "[readable]" in text
    assert "gina@example.com" not in text and "pw-1" not in text


def test_logger_levels_come_from_the_environment_format():
    assert parse_logger_levels("celery=warning, imagineer.request=INFO;django.db=DEBUG") == {
        "celery": "WARNING",
        "imagineer.request": "INFO",
        "django.db": "DEBUG",
    }
    assert parse_logger_levels("") == {}
    for bad in ("celery", "celery=LOUD", "=INFO"):
        with pytest.raises(ImproperlyConfigured):
            parse_logger_levels(bad)
    config = build_logging_config(
        level="info", fmt="json", logger_levels={"celery": "WARNING", "django.request": "INFO"}
    )
    assert config["loggers"]["celery"] == {"level": "WARNING"}
    assert config["loggers"]["django.request"] == {"level": "INFO"}  # overrides the built-in default
    assert config["root"]["level"] == "INFO"
    with pytest.raises(ImproperlyConfigured):
        build_logging_config(level="INFO", fmt="xml")
    with pytest.raises(ImproperlyConfigured):
        build_logging_config(level="CHATTY", fmt="json")


def test_settings_read_log_format_level_and_per_logger_levels(tmp_path):
    """A process started with LOG_FORMAT=json LOG_LEVELS=... writes JSON lines at those levels."""
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('noisy.lib').info('hidden'); logging.getLogger('noisy.lib').warning('shown'); "
        "logging.getLogger('chatty').debug('debug shown'); "
        "from imagineer.core.logging import get_logger; get_logger('app').info('app.line', user='hal@example.com')"
    )
    env = base_env(
        IMAGINEER_DATA_DIR=str(tmp_path),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        LOG_LEVELS="noisy.lib=WARNING,chatty=DEBUG",
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    events = {(ln["logger"], ln["event"]) for ln in lines}
    assert ("noisy.lib", "shown") in events and ("noisy.lib", "hidden") not in events
    assert ("chatty", "debug shown") in events
    (app,) = [ln for ln in lines if ln["event"] == "app.line"]
    assert app["user"] == "[email]" and app["level"] == "info" and app["timestamp"].endswith("Z")


@pytest.mark.django_db
def test_request_line_has_every_field_and_no_query_string(rendered_lines, admin_user):
    from rest_framework.test import APIClient

    token, _ = Token.objects.get_or_create(user=admin_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get("/api/images/?search=ivy@example.com&token=q-secret", HTTP_X_REQUEST_ID="req-line-1")
    assert response.status_code == 200
    (line,) = [ln for ln in rendered_lines() if ln["event"] == "request"]
    assert line["request_id"] == "req-line-1" and line["logger"] == "imagineer.request"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/images/", 200)
    assert line["user_id"] == admin_user.pk  # token auth happens in the view; the line still knows
    assert isinstance(line["duration_ms"], float) and line["level"] == "info" and line["timestamp"]
    text = json.dumps(rendered_lines())
    assert "q-secret" not in text and "ivy@example.com" not in text and token.key not in text
    assert bound_request_id() == ""  # nothing leaks into whatever runs next on this thread


@pytest.mark.django_db
def test_run_job_binds_the_job_id_on_every_line_of_the_work(rendered_lines):
    job = ThumbnailJob.objects.create(image_ids=[])

    def work(claimed):
        get_logger("some.service").info("work.step")
        logging.getLogger("some.library").info("library says hi")

    jobs.run_job(ThumbnailJob, job.pk, work)
    lines = [ln for ln in rendered_lines() if ln["event"] in ("job.started", "work.step", "library says hi")]
    assert len(lines) == 3
    assert all(ln["job_id"] == job.pk and ln["job_type"] == "albums.ThumbnailJob" for ln in lines)
    assert "job_id" not in structlog.contextvars.get_contextvars()  # unbound after the job


def test_tasks_published_during_a_request_carry_its_request_id():
    headers = {}
    celery_app._propagate_request_id(headers=headers)
    assert headers == {}  # no request: nothing to carry
    bind_request_id("req-publish-1")
    celery_app._propagate_request_id(headers=headers)
    assert headers == {"imagineer_request_id": "req-publish-1"}
    explicit = {"imagineer_request_id": "set-by-enqueue"}
    celery_app._propagate_request_id(headers=explicit)
    assert explicit == {"imagineer_request_id": "set-by-enqueue"}  # never overwritten


def test_eager_task_binds_task_fields_and_restores_the_callers_context(rendered_lines):
    from celery import shared_task

    @shared_task(name="tests.core.test_logging.say")
    def say():
        get_logger("tests.task").info("task.said")

    bind_request_id("req-eager-1")
    structlog.contextvars.bind_contextvars(user_marker="kept")
    say.apply()
    (line,) = [ln for ln in rendered_lines() if ln["event"] == "task.said"]
    assert line["task_name"] == "tests.core.test_logging.say" and line["task_id"]
    assert line["request_id"] == "req-eager-1" and "user_marker" not in line
    assert bound_request_id() == "req-eager-1"
    assert structlog.contextvars.get_contextvars()["user_marker"] == "kept"
    say.apply(headers={"imagineer_request_id": "req-from-header"})
    lines = [ln for ln in rendered_lines() if ln["event"] == "task.said"]
    assert lines[-1]["request_id"] == "req-from-header"


def _worker_lines(worker, needle: str) -> list[str]:
    return [line for line in worker.lines if needle in line]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_request_id_reaches_the_task_log_lines_on_a_real_worker(media_root, admin_user):
    """X-Request-ID of an API request -> task header -> every line the worker writes for the job;
    and a task sent with no explicit header (before_task_publish) carries the bound id too."""
    from rest_framework.test import APIClient

    image = make_image()
    token, _ = Token.objects.get_or_create(user=admin_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    with celery_worker(media_root=media_root) as worker:
        response = client.post(
            "/api/images/rebuild-thumbnails/",
            {"image_ids": [image.pk]},
            format="json",
            HTTP_X_REQUEST_ID="req-worker-propagation-1",
        )
        assert response.status_code == 202, response.content
        job = wait_for_final_job(ThumbnailJob.objects.get(pk=response.json()["id"]), worker=worker)
        assert job.status == JobStatus.SUCCEEDED, (job.error_message, worker.text[-2000:])
        assert worker.wait_for("job.finished", timeout=30), worker.text[-2000:]

        # A plain task sent while a request id is bound (no jobs.py, no explicit header).
        stale = ThumbnailJob.objects.create(
            image_ids=[], status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1)
        )
        from imagineer.core.tasks import reap_stale_jobs

        bind_request_id("req-plain-task-2")
        try:
            reap_stale_jobs.delay()
        finally:
            clear_request_context()
        assert worker.wait_for("job.reaped", timeout=60), worker.text[-2000:]
        stale.refresh_from_db()
        assert stale.status == JobStatus.FAILED

    for event in ("job.started", "job.finished"):
        (line,) = _worker_lines(worker, event)
        assert "request_id=req-worker-propagation-1" in line, line
        assert f"job_id={job.pk}" in line and "task_name=albums.tasks." in line and "task_id=" in line, line
    (reaped,) = _worker_lines(worker, "job.reaped")
    assert "request_id=req-plain-task-2" in reaped and "task_name=imagineer.core.tasks.reap_stale_jobs" in reaped
    assert token.key not in worker.text and str(media_root) not in worker.text


@pytest.mark.django_db
def test_every_line_of_a_request_names_its_user_once_known(admin_client_api, admin_user):
    """Not only the request line: a line a service writes during the view carries user_id too."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.factories import image_bytes
    from tests.log_capture import LogCapture

    payload = {"file": SimpleUploadedFile("x.png", image_bytes("PNG", size=(32, 32)), content_type="image/png")}
    with LogCapture() as captured:
        assert admin_client_api.post("/api/images/", payload, format="multipart").status_code == 201
    lines = {line["event"]: line for line in captured.json_lines()}
    assert lines["image.stored"]["user_id"] == admin_user.pk  # written inside the view
    assert lines["request"]["user_id"] == admin_user.pk
