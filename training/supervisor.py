"""Running the trainer as a child process under guards.

The trainer gets its own process group (session), so stopping it stops everything it started
(data loader workers, compile helpers): SIGTERM to the group, a grace period, then SIGKILL.
Three things stop it early: the wall-clock limit, the idle limit (no progress event for that
long: a hung trainer), and the caller (cancel, or the Celery soft time limit) raising out of the
event callback or the poll. Whatever ends the run, the group is gone when `supervise` returns.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from imagineer.core.logging import get_logger

logger = get_logger(__name__)

POLL_SECONDS = 0.25


class TrainerStopped(Exception):
    """A guard stopped the trainer; the message is the reason an operator reads."""


@dataclass
class Guards:
    wall_clock_seconds: float
    idle_seconds: float
    terminate_grace_seconds: float


@dataclass
class TrainerResult:
    exit_code: int
    events: list[dict] = field(default_factory=list)

    def last(self, kind: str) -> dict | None:
        return next((e for e in reversed(self.events) if e.get("event") == kind), None)


def _pump_lines(stream: IO[bytes], sink: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
        sink(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    stream.close()


def _pump_events(stream: IO[bytes], events: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        try:
            event = json.loads(raw)
        except ValueError:
            continue  # not an event: a trainer bug, not a reason to stop reading
        if isinstance(event, dict):
            events.put(event)
    stream.close()


def stop_process_group(proc: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM the child's group, wait `grace_seconds`, then SIGKILL the group; reap the child."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break  # the whole group is gone
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # The leader exited on SIGTERM; anything it left in its group goes now.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
    if proc.poll() is None:
        proc.wait(timeout=30)


def supervise(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    guards: Guards,
    on_line: Callable[[str], None],
    on_event: Callable[[dict], None],
    on_start: Callable[[int], None] = lambda pid: None,
    poll: Callable[[], None] = lambda: None,
) -> TrainerResult:
    """Run `command` (given `--progress-fd N` here) to its end or until a guard or the caller stops it.

    `on_start` gets the trainer's pid and `on_event` every progress event (both in this thread, so
    they may touch the database and raise); `on_line` gets every output line (in a reader thread);
    `poll` runs about once a second and may raise to stop the run. Raises TrainerStopped when a
    guard fired; re-raises what `on_start`/`on_event`/`poll` raised.
    """
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [*command, "--progress-fd", str(write_fd)],
            cwd=cwd,
            env={**env, "IMAGINEER_SUPERVISOR_PID": str(os.getpid())},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds its copy; EOF on ours means the child is gone
    events: queue.Queue = queue.Queue()
    pumps = [
        threading.Thread(target=_pump_lines, args=(proc.stdout, on_line), name="trainer-output", daemon=True),
        threading.Thread(
            target=_pump_events, args=(os.fdopen(read_fd, "rb"), events), name="trainer-events", daemon=True
        ),
    ]
    for pump in pumps:
        pump.start()
    result = TrainerResult(exit_code=-1)
    started = last_progress = last_poll = time.monotonic()
    try:
        # Inside the try: a caller that raises here (its job was lost) still gets the group stopped.
        on_start(proc.pid)
        while True:
            exited = proc.poll() is not None
            if exited:
                for pump in pumps:  # the pipes drain to EOF once the child (and its group) closed them
                    pump.join(timeout=5)
            while not events.empty():
                event = events.get_nowait()
                result.events.append(event)
                last_progress = time.monotonic()
                on_event(event)
            if exited:
                break
            now = time.monotonic()
            if now - started > guards.wall_clock_seconds:
                raise TrainerStopped(
                    f"Stopped: the run passed its wall-clock limit of {guards.wall_clock_seconds:g} s."
                )
            if now - last_progress > guards.idle_seconds:
                raise TrainerStopped(
                    f"Stopped: the trainer reported no progress for {guards.idle_seconds:g} s (idle limit)."
                )
            if now - last_poll >= 1.0:
                last_poll = now
                poll()
            time.sleep(POLL_SECONDS)
        result.exit_code = proc.returncode
        return result
    finally:
        if proc.poll() is None:
            logger.info("trainer.stopping", pid=proc.pid)
            stop_process_group(proc, guards.terminate_grace_seconds)
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # helpers the trainer left behind in its group
            except (ProcessLookupError, PermissionError):
                pass
        for pump in pumps:
            pump.join(timeout=5)
