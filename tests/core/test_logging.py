"""The one redaction step: prompts, secrets, e-mails and filesystem paths never reach a log line."""

import json
import logging

import pytest

from imagineer.core.logging import describe_prompt, get_logger


@pytest.fixture
def rendered_lines(settings):
    """Lines exactly as the configured JSON formatter writes them."""
    import io

    from imagineer.core.logging import build_logging_config

    config = build_logging_config(level="INFO", fmt="json")
    formatter_spec = dict(config["formatters"]["structured"])
    factory = formatter_spec.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory(**formatter_spec))
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    root.removeHandler(handler)


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


def test_plain_stdlib_log_calls_pass_the_same_redaction(rendered_lines, settings):
    logging.getLogger("some.library").warning("failed for alice@example.org in %s", settings.DATA_DIR)
    (line,) = [ln for ln in rendered_lines() if ln.get("logger") == "some.library"]
    assert "alice@example.org" not in line["event"] and str(settings.DATA_DIR) not in line["event"]


def test_tracebacks_lose_absolute_paths(rendered_lines, settings):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("test").exception("it.failed")
    (line,) = [ln for ln in rendered_lines() if ln["event"] == "it.failed"]
    assert "RuntimeError: boom" in line["exception"]
    assert str(settings.BASE_DIR) not in line["exception"]
