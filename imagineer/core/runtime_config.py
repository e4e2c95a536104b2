"""Runtime config: operator-tunable defaults in one YAML file, read through one cached loader.

Deploy-time values (secrets, URLs, paths) stay in the environment (settings.py). What an operator
tunes while the system runs — generation defaults, training parameters, scraping limits, which
labeler runs, retention ages, disk alert thresholds — lives in the file named by
`IMAGINEER_CONFIG` (default `<data dir>/config.yaml`; docs/config.example.yaml documents every
key). Layers, last wins: built-in defaults < the matching environment settings < the file.

The loader:
- validates the whole file against the schema below (pydantic, unknown keys refused), so a bad
  file is refused with the key and the reason, and the last good config stays in force;
- caches the parsed config and re-reads the file only when its mtime (or size, or inode: editors
  that replace the file) changes — a stat per call, no parse;
- is thread-safe (one lock around every load) and hands out deep copies of frozen models, so no
  caller can change what the next caller sees.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger

logger = get_logger(__name__)


class RuntimeConfigInvalid(ImagineerError):
    """The file cannot be used; `details` names each bad key and why."""

    code = "config_invalid"


# Checks of a field's value that only a higher app can make (generation knows its schedulers):
# the app registers them in its AppConfig.ready(), since core never imports the apps above it.
_FIELD_CHECKS: dict[tuple[str, str], Callable[[Any], Any]] = {}


def register_field_check(section: str, field: str, check: Callable[[Any], Any]) -> None:
    """Have `check(value)` validate a section's field: it returns the value, or raises ValueError saying why."""
    _FIELD_CHECKS[(section, field)] = check


def run_field_check(section: str, field: str, value: Any) -> Any:
    check = _FIELD_CHECKS.get((section, field))
    return check(value) if check is not None else value


class _Section(BaseModel):
    # Frozen and strict about keys: a typo ("stesp: 20") is refused, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationConfig(_Section):
    steps: int = Field(30, ge=1, le=150)
    guidance_scale: float = Field(7.5, ge=0, le=30)
    scheduler: str = "dpmpp_2m_karras"
    negative_prompt: str = Field("blurry, low quality", max_length=2000)
    max_batch: int = Field(4, ge=1, le=64, description="Images per diffusers call inside one job.")
    set_run_batch_size: int = Field(4, ge=1, le=64, description="Set items per generation job of a set run.")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        return run_field_check("generation", "scheduler", value)


class TrainingConfig(_Section):
    steps: int = Field(500, ge=1, le=100_000)
    rank: int = Field(4, ge=1, le=256)
    alpha: int = Field(4, ge=1, le=512)
    learning_rate: float = Field(1e-4, gt=0, le=1)
    batch_size: int = Field(1, ge=1, le=64)
    gradient_accumulation_steps: int = Field(1, ge=1, le=128)
    warmup_steps: int = Field(0, ge=0, le=100_000)
    resolution: int = Field(512, ge=64, le=2048, multiple_of=8)
    center_crop: bool = True
    random_flip: bool = True
    seed: int | None = Field(None, ge=0)
    save_every_steps: int = Field(0, ge=0, description="0: save only the final LoRA.")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("fp16", description="Used on CUDA only.")
    min_captioned_images: int = Field(20, ge=1)
    wall_clock_limit_seconds: int = Field(
        4 * 3600, ge=1, description="A run still going after this long is stopped; keep it below the Celery limit."
    )
    idle_limit_seconds: int = Field(15 * 60, ge=1, description="No progress for this long stops the run.")
    terminate_grace_seconds: float = Field(
        30, ge=0, le=600, description="After SIGTERM, how long the trainer may take to exit before SIGKILL."
    )
    max_active_runs: int = Field(1, ge=1, le=16)


class ScrapingConfig(_Section):
    max_images: int = Field(200, ge=1, le=10_000, description="Images kept per job.")
    max_depth: int = Field(2, ge=0, le=10, description="Links followed from the start page (0: that page only).")
    max_pages: int = Field(200, ge=1, le=10_000, description="HTML pages fetched per job.")
    same_host_only: bool = True
    respect_robots_txt: bool = True
    user_agent: str = Field("ImagineerBot/1.0 (+https://github.com/imagineer)", min_length=1, max_length=200)
    request_timeout_seconds: float = Field(20, gt=0, le=300)
    retries: int = Field(2, ge=0, le=10, description="Extra attempts for a download that failed or timed out.")
    retry_backoff_seconds: float = Field(1.0, ge=0, le=60, description="First back-off; doubles each retry.")
    concurrency: int = Field(4, ge=1, le=32, description="Downloads in flight at once.")
    max_redirects: int = Field(5, ge=0, le=20)
    max_page_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    min_width: int = Field(256, ge=1, le=20_000)
    min_height: int = Field(256, ge=1, le=20_000)
    max_aspect_ratio: float = Field(4.0, ge=1, le=100, description="Longer side over shorter side.")
    phash_threshold: int = Field(
        6, ge=0, le=64, description="Perceptual-hash Hamming distance at or below which two images are duplicates."
    )


class LabelingConfig(_Section):
    labeler: Literal["auto", "claude", "nudenet"] = "auto"
    claude_model: str = Field("claude-sonnet-4-5", min_length=1)
    claude_timeout_seconds: float = Field(60, gt=0, le=600)
    claude_max_retries: int = Field(4, ge=0, le=10)
    claude_max_tokens: int = Field(1024, ge=64, le=8192)
    claude_max_image_side: int = Field(1568, ge=64, le=8000)
    nudenet_explicit_threshold: float = Field(0.5, ge=0, le=1)
    nudenet_adult_threshold: float = Field(0.5, ge=0, le=1)
    nudenet_suggestive_threshold: float = Field(0.5, ge=0, le=1)
    autocheck_labeler: Literal["nudenet", "claude"] = Field(
        "nudenet", description="Who checks new images before they become public (IMAGINEER_NSFW_AUTOCHECK)."
    )


class QuotasConfig(_Section):
    """Per-user defaults (admins exempt; admin › Users › quota overrides one user). null: no limit."""

    images_per_day: int | None = Field(200, ge=0, description="Images made per day (UTC), all kinds.")
    concurrent_jobs: int | None = Field(4, ge=0, description="Jobs queued or running at once.")
    gpu_seconds_per_day: int | None = Field(3600, ge=0, description="GPU seconds per day (UTC).")


class RetentionConfig(_Section):
    """Default max ages (days) a new RetentionPolicy of each target starts with."""

    generation_scratch_days: int = Field(2, ge=1)
    orphaned_media_days: int = Field(7, ge=1)
    scraped_unalbumed_days: int = Field(30, ge=1)
    training_artifacts_days: int = Field(30, ge=1)
    bug_reports_days: int = Field(90, ge=1)
    disk_snapshots_days: int = Field(90, ge=1)


class MonitoredDirectory(_Section):
    label: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    path: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError("must be an absolute path")
        return value


class DiskConfig(_Section):
    alert_threshold_percent: float = Field(85, gt=0, le=100)
    scan_time_limit_seconds: float = Field(120, gt=0, le=3600)
    alert_emails: tuple[str, ...] = ()
    extra_directories: tuple[MonitoredDirectory, ...] = ()


class RuntimeConfig(_Section):
    generation: GenerationConfig = GenerationConfig()
    training: TrainingConfig = TrainingConfig()
    scraping: ScrapingConfig = ScrapingConfig()
    labeling: LabelingConfig = LabelingConfig()
    quotas: QuotasConfig = QuotasConfig()
    retention: RetentionConfig = RetentionConfig()
    disk: DiskConfig = DiskConfig()


# Keys that hold server paths: left out of anything shown over HTTP (model_dump(exclude=...)).
SERVER_PATHS: dict[str, Any] = {"disk": {"extra_directories": {"__all__": {"path"}}}}


def environment_defaults() -> dict[str, Any]:
    """The layer between built-in defaults and the file: the settings that existed before the file did.

    Read on every call (a few attribute reads), so a changed setting is noticed like a changed file.
    """
    from django.conf import settings

    generation = settings.IMAGINEER_GENERATION_DEFAULTS
    return {
        "generation": {
            "steps": generation["steps"],
            "guidance_scale": generation["guidance_scale"],
            "scheduler": generation["scheduler"],
            "negative_prompt": generation["negative_prompt"],
            "max_batch": settings.IMAGINEER_GENERATION_MAX_BATCH,
            "set_run_batch_size": settings.IMAGINEER_SET_RUN_BATCH_SIZE,
        },
        "labeling": {
            "labeler": (settings.IMAGINEER_LABELER or "auto").lower(),
            "claude_model": settings.IMAGINEER_CLAUDE_MODEL,
            "claude_timeout_seconds": settings.IMAGINEER_CLAUDE_TIMEOUT_SECONDS,
            "claude_max_retries": settings.IMAGINEER_CLAUDE_MAX_RETRIES,
            "claude_max_tokens": settings.IMAGINEER_CLAUDE_MAX_TOKENS,
            "claude_max_image_side": settings.IMAGINEER_CLAUDE_MAX_IMAGE_SIDE,
            "nudenet_explicit_threshold": settings.IMAGINEER_NUDENET_EXPLICIT_THRESHOLD,
            "nudenet_adult_threshold": settings.IMAGINEER_NUDENET_ADULT_THRESHOLD,
            "nudenet_suggestive_threshold": settings.IMAGINEER_NUDENET_SUGGESTIVE_THRESHOLD,
        },
        "disk": {"alert_threshold_percent": settings.IMAGINEER_DISK_ALERT_PERCENT},
    }


def environment_problems() -> dict[str, str]:
    """Keys the environment layer alone gives invalid values ({} when it is fine): a system check."""
    try:
        RuntimeConfig.model_validate(environment_defaults())
    except ValidationError as exc:
        return _describe_errors(exc)
    return {}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe_errors(error: ValidationError) -> dict[str, str]:
    """{"generation.steps": "Input should be greater than or equal to 1", ...}"""
    return {".".join(str(part) for part in item["loc"]) or "(file)": item["msg"] for item in error.errors()}


def parse_config(text: str, env_defaults: dict[str, Any]) -> RuntimeConfig:
    """Validate YAML text over the environment layer; RuntimeConfigInvalid naming each bad key."""
    try:
        document = yaml.safe_load(text)
    except RecursionError:
        raise RuntimeConfigInvalid("The config file nests too deeply.", details={"(file)": "too deep"}) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RuntimeConfigInvalid(
            f"The config file is not valid YAML{where}.", details={"(file)": str(getattr(exc, "problem", exc))}
        ) from None
    if document is None:
        document = {}  # an empty file: every default
    if not isinstance(document, dict):
        raise RuntimeConfigInvalid(
            "The config file must be a mapping of sections (generation, training, ...).",
            details={"(file)": f"found a {type(document).__name__}"},
        )
    try:
        return RuntimeConfig.model_validate(_merge(env_defaults, document))
    except ValidationError as exc:
        details = _describe_errors(exc)
        first_key, first_reason = next(iter(details.items()))
        raise RuntimeConfigInvalid(
            f"The config file is invalid: {first_key}: {first_reason}.", details=details
        ) from None


@dataclass(frozen=True)
class _FileStamp:
    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> _FileStamp | None:
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return cls(-1, -1, -1)  # there but not statable (permissions): reading it fails and is reported
        return cls(stat.st_mtime_ns, stat.st_size, stat.st_ino)

    @property
    def mtime(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=UTC)


def _read_settled(path: Path, stamp: _FileStamp | None) -> tuple[str, _FileStamp | None]:
    """The file's text and the stamp it had while read. A file rewritten in place during the read
    is read again (a few times), so a half-written file is not cached under the final stamp."""
    for _ in range(3):
        if stamp is None:
            return "", None
        text = path.read_text(encoding="utf-8")
        after = _FileStamp.of(path)
        if after == stamp:
            return text, stamp
        stamp = after
    return text, stamp


class RuntimeConfigStore:
    """The cache. One per process (`store` below); tests may make their own."""

    def __init__(self, path: Path | None = None):
        self._fixed_path = path
        self._lock = threading.RLock()
        self._config: RuntimeConfig | None = None
        self._loaded_at: datetime | None = None
        self._loaded_stamp: _FileStamp | None = None
        self._loaded_path: Path | None = None
        self._loaded_env: dict[str, Any] | None = None
        # The stamp of a file that failed, so a bad file is parsed (and logged) once, not on every call.
        self._rejected_stamp: _FileStamp | None = None
        self._last_error: RuntimeConfigInvalid | None = None

    @property
    def path(self) -> Path:
        if self._fixed_path is not None:
            return self._fixed_path
        from django.conf import settings

        return Path(settings.IMAGINEER_CONFIG)

    def get(self) -> RuntimeConfig:
        """The config in force, as a deep copy; re-read first when the file (or environment) changed."""
        with self._lock:
            path, stamp, env = self.path, _FileStamp.of(self.path), environment_defaults()
            unchanged = (
                self._config is not None
                and path == self._loaded_path
                and env == self._loaded_env
                and (stamp == self._loaded_stamp or (stamp is not None and stamp == self._rejected_stamp))
            )
            if not unchanged:
                try:
                    self._load(path, stamp, env)
                except RuntimeConfigInvalid:
                    pass  # logged in _load; the last good config stays in force
            assert self._config is not None
            return self._config.model_copy(deep=True)

    def reload(self) -> RuntimeConfig:
        """Read the file now, whatever its mtime. RuntimeConfigInvalid if it is bad (old config kept)."""
        with self._lock:
            path = self.path
            self._load(path, _FileStamp.of(path), environment_defaults())
            assert self._config is not None
            return self._config.model_copy(deep=True)

    def _load(self, path: Path, stamp: _FileStamp | None, env: dict[str, Any]) -> None:
        try:
            text, stamp = _read_settled(path, stamp)
            config = parse_config(text, env)
        except (OSError, UnicodeDecodeError) as exc:
            self._reject(
                stamp,
                env,
                RuntimeConfigInvalid("The config file cannot be read.", details={"(file)": type(exc).__name__}),
            )
            raise self._last_error from None
        except RuntimeConfigInvalid as exc:
            self._reject(stamp, env, exc)
            raise
        self._config = config
        self._loaded_at = datetime.now(tz=UTC)
        self._loaded_stamp = stamp
        self._loaded_path = path
        self._loaded_env = env
        self._rejected_stamp = None
        self._last_error = None
        logger.info("runtime_config_loaded", source="file" if stamp is not None else "defaults")

    def _reject(self, stamp: _FileStamp | None, env: dict[str, Any], error: RuntimeConfigInvalid) -> None:
        self._rejected_stamp = stamp
        self._last_error = error
        if self._config is None:
            # Nothing good was ever loaded in this process: run on the defaults rather than not at all
            # (the built-in ones when the environment layer is itself out of range: the system
            # check `imagineer.E007` names that setting at start-up).
            try:
                self._config = RuntimeConfig.model_validate(env)
            except ValidationError:
                self._config = RuntimeConfig()
            self._loaded_at = datetime.now(tz=UTC)
            self._loaded_stamp = None
            self._loaded_path = self.path
            self._loaded_env = env
        logger.warning("runtime_config_rejected", reason=error.message, keys=sorted(error.details))

    def stats(self) -> dict[str, Any]:
        """What the cache holds, for the admin endpoint and page. No path: it could leak the layout."""
        with self._lock:
            stamp = _FileStamp.of(self.path)
            return {
                "cached": self._config is not None,
                "loaded_at": self._loaded_at,
                "source": "file" if self._loaded_stamp is not None else "defaults",
                "cached_mtime": self._loaded_stamp.mtime if self._loaded_stamp else None,
                "file_exists": stamp is not None,
                "file_mtime": stamp.mtime if stamp else None,
                "stale": self._config is None or stamp != self._loaded_stamp,
                "last_error": (
                    {"message": self._last_error.message, "details": self._last_error.details}
                    if self._last_error
                    else None
                ),
            }

    def clear(self) -> None:
        """Forget everything cached (tests; a changed IMAGINEER_CONFIG is noticed without this)."""
        with self._lock:
            self._config = self._loaded_at = self._loaded_stamp = self._loaded_path = self._loaded_env = None
            self._rejected_stamp = self._last_error = None


store = RuntimeConfigStore()


def get_runtime_config() -> RuntimeConfig:
    """The operator-tunable defaults in force now (a copy: change it freely)."""
    return store.get()
