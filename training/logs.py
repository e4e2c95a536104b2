"""A training run's log: every line its trainer printed, in media storage, read by byte offset.

Lines are appended as they arrive, so `GET /api/training/runs/{id}/logs/?offset=N` can follow a
run live: it answers the complete lines after byte N and the offset to ask for next. Paths are
replaced by `<path>` on the way in (a library's warning may name a file), so neither the file nor
the endpoint ever shows one.

Appending needs a storage with local paths (FileSystemStorage, the default). On a remote storage
(S3) the lines go to a local file in the run's scratch and are stored when the run ends; until
then the endpoint answers what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage

from imagineer.core.errors import ImagineerError
from imagineer.core.jobs import ABSOLUTE_PATH

LOG_FOLDER = "training/logs"
MAX_READ_BYTES = 256 * 1024
MAX_LINE_CHARS = 4000


class InvalidLogOffset(ImagineerError):
    code = "invalid_offset"


def log_name(run) -> str:
    return f"{LOG_FOLDER}/run-{run.pk}.log"


def clean_line(line: str) -> str:
    line = ABSOLUTE_PATH.sub("<path>", line)
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " …"


class LogWriter:
    """Appends lines to the run's stored log (or to a scratch file on remote storage)."""

    def __init__(self, run, scratch: Path):
        self.name = log_name(run)
        try:
            self.path = Path(default_storage.path(self.name))
            self.remote = False
        except NotImplementedError:
            self.path = scratch / "trainer.log"
            self.remote = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.remote and default_storage.exists(self.name):  # earlier attempts' lines come first
            with default_storage.open(self.name, "rb") as stored, open(self.path, "wb") as local:
                local.write(stored.read())
        self._handle = open(self.path, "a", encoding="utf-8", buffering=1)

    def write(self, line: str) -> None:
        self._handle.write(clean_line(line) + "\n")

    def close(self) -> str:
        """Close the log; on remote storage store it now. Returns its storage name."""
        self._handle.close()
        if self.remote:
            default_storage.delete(self.name)
            with open(self.path, "rb") as local:
                # A storage that will not overwrite may pick another name: that is the one to keep.
                self.name = default_storage.save(self.name, File(local))
        return self.name


@dataclass(frozen=True)
class LogChunk:
    lines: list[str]
    offset: int
    next_offset: int
    size: int


def read_log(run, offset: int, max_bytes: int = MAX_READ_BYTES) -> LogChunk:
    """The complete lines stored after byte `offset` (at most about `max_bytes` of them)."""
    if offset < 0:
        raise InvalidLogOffset("offset must be 0 or more (a byte position returned as next_offset).")
    name = run.log_file.name
    if not name or not default_storage.exists(name):
        if offset:
            raise InvalidLogOffset("This run has no log yet; start from offset 0.", details={"size": 0})
        return LogChunk(lines=[], offset=0, next_offset=0, size=0)
    size = default_storage.size(name)
    if offset > size:
        raise InvalidLogOffset(
            f"offset {offset} is past the end of the log ({size} bytes); use a next_offset this endpoint returned.",
            details={"size": size},
        )
    with default_storage.open(name, "rb") as handle:
        handle.seek(offset)
        data = handle.read(max_bytes)
    end = data.rfind(b"\n")
    if end < 0:
        # No complete line yet, or one line longer than a page: hand out what there is when it is
        # the whole rest of the file, else wait for its newline.
        if len(data) == max_bytes:
            end = len(data) - 1
        else:
            return LogChunk(lines=[], offset=offset, next_offset=offset, size=size)
    complete = data[: end + 1]
    lines = complete.decode("utf-8", errors="replace").splitlines()
    return LogChunk(lines=lines, offset=offset, next_offset=offset + len(complete), size=size)


def tail_log(run, max_bytes: int = 64 * 1024) -> list[str]:
    """The last complete lines of the log, at most about `max_bytes` of them (admin pages)."""
    name = run.log_file.name
    if not name or not default_storage.exists(name):
        return []
    start = max(0, default_storage.size(name) - max_bytes)
    lines = read_log(run, start, max_bytes=max_bytes).lines
    return lines[1:] if start and lines else lines  # the first line read may be the end of a longer one
