"""Runtime config: the YAML file, its validation, the cache, the admin endpoints and page."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from imagineer.core import runtime_config
from imagineer.core.runtime_config import RuntimeConfig, RuntimeConfigInvalid, get_runtime_config, store
from tests.assertions import assert_envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "config.example.yaml"


def write(path: Path, text: str, *, bump_ns: int = 0) -> None:
    """Replace the file the way editors and config management do (a new file renamed over the old
    one, see docs/CONFIG.md), moving its mtime forward so two writes in one clock tick still differ."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    if bump_ns:
        stat = staging.stat()
        os.utime(staging, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump_ns))
    os.replace(staging, path)


# --- loading and validation -------------------------------------------------------------------


def test_no_file_means_the_defaults(runtime_config_file):
    config = get_runtime_config()
    assert config == RuntimeConfig.model_validate(runtime_config.environment_defaults())
    stats = store.stats()
    assert stats["source"] == "defaults" and stats["file_exists"] is False and stats["stale"] is False


def test_the_file_overrides_only_the_keys_it_names(runtime_config_file):
    write(runtime_config_file, "generation:\n  steps: 12\ntraining:\n  rank: 16\n")
    config = get_runtime_config()
    assert config.generation.steps == 12 and config.training.rank == 16
    assert config.generation.guidance_scale == 7.5 and config.training.alpha == 4  # untouched keys keep defaults
    assert store.stats()["source"] == "file"


def test_environment_settings_sit_between_defaults_and_the_file(runtime_config_file, settings):
    settings.IMAGINEER_GENERATION_DEFAULTS = {**settings.IMAGINEER_GENERATION_DEFAULTS, "steps": 22}
    settings.IMAGINEER_CLAUDE_MODEL = "claude-from-env"
    assert get_runtime_config().generation.steps == 22
    write(runtime_config_file, "generation:\n  steps: 9\n")
    config = get_runtime_config()
    assert config.generation.steps == 9  # the file wins
    assert config.labeling.claude_model == "claude-from-env"  # the environment fills what the file leaves


def test_a_changed_mtime_reloads(runtime_config_file):
    write(runtime_config_file, "generation:\n  steps: 10\n")
    assert get_runtime_config().generation.steps == 10
    loaded_at = store.stats()["loaded_at"]
    assert get_runtime_config().generation.steps == 10 and store.stats()["loaded_at"] == loaded_at  # cached
    write(runtime_config_file, "generation:\n  steps: 11\n", bump_ns=2_000_000_000)
    assert get_runtime_config().generation.steps == 11
    assert store.stats()["loaded_at"] > loaded_at


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("generation:\n  steps: [1\n", "(file)", ""),  # not YAML
        ("- just\n- a list\n", "(file)", "list"),
        ("generation:\n  steps: 0\n", "generation.steps", "greater than or equal to 1"),
        ("generation:\n  stesp: 20\n", "generation.stesp", "Extra inputs are not permitted"),
        ("genration:\n  steps: 20\n", "genration", "Extra inputs are not permitted"),
        ("generation:\n  scheduler: warp_drive\n", "generation.scheduler", "unknown scheduler 'warp_drive'"),
        ("training:\n  resolution: 500\n", "training.resolution", "multiple of 8"),
        ("training:\n  mixed_precision: fp8\n", "training.mixed_precision", "'no', 'fp16' or 'bf16'"),
        ("labeling:\n  labeler: gpt\n", "labeling.labeler", "'auto', 'claude' or 'nudenet'"),
        ("disk:\n  alert_threshold_percent: 150\n", "disk.alert_threshold_percent", "less than or equal to 100"),
        (
            "disk:\n  extra_directories:\n    - {label: x, path: relative/dir}\n",
            "disk.extra_directories.0.path",
            "absolute",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_key_and_the_old_config_stays(runtime_config_file, text, key, reason):
    write(runtime_config_file, "generation:\n  steps: 17\n")
    assert get_runtime_config().generation.steps == 17
    write(runtime_config_file, text, bump_ns=2_000_000_000)

    assert get_runtime_config().generation.steps == 17  # the last good config stays in force
    with pytest.raises(RuntimeConfigInvalid) as refused:
        store.reload()
    assert key in refused.value.details and reason in refused.value.details[key]
    assert get_runtime_config().generation.steps == 17
    stats = store.stats()
    assert stats["stale"] is True and stats["source"] == "file"
    assert key in stats["last_error"]["details"]


def test_a_bad_first_file_runs_on_the_defaults_until_it_is_fixed(runtime_config_file):
    write(runtime_config_file, "generation:\n  steps: -1\n")
    assert get_runtime_config().generation.steps == 30
    assert store.stats()["last_error"] is not None
    write(runtime_config_file, "generation:\n  steps: 5\n", bump_ns=2_000_000_000)
    assert get_runtime_config().generation.steps == 5
    assert store.stats()["last_error"] is None and store.stats()["stale"] is False


def test_a_bad_file_is_parsed_once_not_on_every_call(runtime_config_file, monkeypatch):
    write(runtime_config_file, "generation:\n  steps: 0\n")
    parses = []
    real_parse = runtime_config.parse_config
    monkeypatch.setattr(runtime_config, "parse_config", lambda *a: parses.append(1) or real_parse(*a))
    for _ in range(5):
        get_runtime_config()
    assert len(parses) == 1


def test_callers_get_copies_they_cannot_corrupt(runtime_config_file):
    first = get_runtime_config()
    with pytest.raises(ValidationError):
        first.generation.steps = 1  # frozen
    assert get_runtime_config() is not first and get_runtime_config().generation is not first.generation
    assert get_runtime_config().generation.steps == 30


def test_concurrent_readers_see_whole_configs_while_the_file_changes(runtime_config_file):
    """Each reader gets either the old or the new file, never a mixture, and nothing raises."""
    write(runtime_config_file, "generation:\n  steps: 1\n  max_batch: 1\n")
    seen, errors = set(), []

    def read():
        try:
            for _ in range(300):
                config = get_runtime_config()
                seen.add((config.generation.steps, config.generation.max_batch))
        except Exception as exc:  # noqa: BLE001 - any failure fails the test below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(6)]
    for reader in readers:
        reader.start()
    for n in range(2, 30):
        write(runtime_config_file, f"generation:\n  steps: {n}\n  max_batch: {n}\n", bump_ns=n * 1_000_000_000)
    for reader in readers:
        reader.join()
    assert not errors
    assert all(steps == batch for steps, batch in seen)  # no half-read file: steps and batch change together


# --- the example file ---------------------------------------------------------------------------


def _keys(model, prefix=""):
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, runtime_config._Section):
            yield from _keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _document_keys(document, prefix=""):
    for name, value in document.items():
        if isinstance(value, dict):
            yield from _document_keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_the_example_file_documents_every_key_with_its_default():
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert RuntimeConfig.model_validate(document) == RuntimeConfig()
    assert set(_document_keys(document)) == set(_keys(RuntimeConfig()))


# --- where the config is used --------------------------------------------------------------------


def test_generation_defaults_come_from_the_config(runtime_config_file, db):
    from generation.models import DiffusionModel
    from generation.registry import model_defaults

    model = DiffusionModel(name="m", family="sd1")
    write(runtime_config_file, "generation:\n  steps: 14\n  negative_prompt: ugly\n")
    defaults = model_defaults(model)
    assert defaults["steps"] == 14 and defaults["negative_prompt"] == "ugly"


def test_the_labeler_choice_comes_from_the_config(runtime_config_file, settings):
    from labeling.labelers import default_labeler_name

    settings.ANTHROPIC_API_KEY = "sk-test-not-a-real-key"
    assert default_labeler_name() == "claude"  # auto, with a key
    write(runtime_config_file, "labeling:\n  labeler: nudenet\n")
    assert default_labeler_name() == "nudenet"


# --- API ---------------------------------------------------------------------------------------


def test_cache_stats_endpoint(admin_client_api, runtime_config_file):
    write(runtime_config_file, "generation:\n  steps: 8\n")
    get_runtime_config()
    body = admin_client_api.get("/api/admin/config/cache").json()
    assert body["cached"] is True and body["source"] == "file" and body["stale"] is False
    assert body["file_exists"] is True and body["loaded_at"] and body["file_mtime"] == body["cached_mtime"]
    assert str(runtime_config_file) not in str(body)


def test_reload_endpoint_reloads_and_refuses_a_bad_file(admin_client_api, runtime_config_file):
    write(runtime_config_file, "generation:\n  steps: 8\n")
    assert admin_client_api.post("/api/admin/config/reload").status_code == 200
    assert get_runtime_config().generation.steps == 8

    write(runtime_config_file, "generation:\n  steps: 999\n", bump_ns=2_000_000_000)
    error = assert_envelope(admin_client_api.post("/api/admin/config/reload"), 400, "config_invalid")
    assert "generation.steps" in error["message"] and "generation.steps" in error["details"]
    assert get_runtime_config().generation.steps == 8
    assert admin_client_api.get("/api/admin/config/cache").json()["stale"] is True


def test_config_endpoint_shows_the_config_without_server_paths(admin_client_api, runtime_config_file, tmp_path):
    secret_dir = tmp_path / "private-layout"
    write(runtime_config_file, f"disk:\n  extra_directories:\n    - {{label: archive, path: {secret_dir}}}\n")
    body = admin_client_api.get("/api/admin/config").json()
    assert body["generation"]["steps"] == 30
    assert body["disk"]["extra_directories"] == [{"label": "archive"}]
    assert str(secret_dir) not in str(body)


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", "/api/admin/config"), ("get", "/api/admin/config/cache"), ("post", "/api/admin/config/reload")],
)
def test_config_endpoints_are_admin_only(api_client, user_client_api, method, url):
    assert_envelope(getattr(api_client, method)(url), 401)
    assert_envelope(getattr(user_client_api, method)(url), 403)


# --- admin page ----------------------------------------------------------------------------------


def test_admin_page_shows_the_config_and_reloads(admin_browser, runtime_config_file):
    write(runtime_config_file, "generation:\n  steps: 13\n")
    page = admin_browser.get("/admin/ops/runtime-config/")
    assert page.status_code == 200 and b"steps: 13" in page.content

    write(runtime_config_file, "generation:\n  steps: nope\n", bump_ns=2_000_000_000)
    after = admin_browser.post("/admin/ops/runtime-config/", follow=True)
    assert b"generation.steps" in after.content and b"previous config stays in force" in after.content
    assert get_runtime_config().generation.steps == 13


def test_admin_page_needs_staff(client, plain_user):
    client.force_login(plain_user)
    response = client.get("/admin/ops/runtime-config/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_index_links_the_operations_pages(admin_browser):
    page = admin_browser.get("/admin/").content.decode()
    assert 'href="/admin/ops/runtime-config/"' in page and 'href="/admin/ops/disksnapshot/usage/"' in page


def test_an_out_of_range_environment_setting_is_named_at_start_up_and_never_breaks_reads(runtime_config_file, settings):
    from imagineer.core.checks import check_runtime_config_environment

    assert check_runtime_config_environment() == []
    settings.IMAGINEER_GENERATION_MAX_BATCH = 0  # the environment layer alone is invalid
    (problem,) = check_runtime_config_environment()
    assert problem.id == "imagineer.E007" and "generation.max_batch" in problem.msg
    config = get_runtime_config()  # no exception: the built-in defaults
    assert config.generation.max_batch == 4
    assert "generation.max_batch" in store.stats()["last_error"]["details"]
    write(runtime_config_file, "generation:\n  max_batch: 2\n")  # the file may fix it
    assert get_runtime_config().generation.max_batch == 2


def test_an_unreadable_or_absurd_file_keeps_the_last_good_config(runtime_config_file):
    write(runtime_config_file, "generation:\n  steps: 21\n")
    assert get_runtime_config().generation.steps == 21
    write(runtime_config_file, "a: " + "[" * 5000 + "]" * 5000 + "\n", bump_ns=2_000_000_000)  # nests too deep
    assert get_runtime_config().generation.steps == 21
    runtime_config_file.unlink()
    runtime_config_file.mkdir()  # a directory where the file should be: unreadable
    assert get_runtime_config().generation.steps == 21
    assert store.stats()["last_error"]["message"] == "The config file cannot be read."
