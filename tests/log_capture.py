"""Log lines as the project's formatters write them, captured while a block of a test runs."""

from __future__ import annotations

import io
import json
import logging

import structlog

from imagineer.core.logging import build_logging_config


class LogCapture:
    """Every line as the project's formatters write it: the configured handlers of the root logger
    (their stream swapped for a buffer meanwhile), plus a JSON (production format) handler."""

    def __init__(self) -> None:
        spec = dict(build_logging_config(level="INFO", fmt="json")["formatters"]["structured"])
        factory = spec.pop("()")
        self.json_stream = io.StringIO()
        self.json_handler = logging.StreamHandler(self.json_stream)
        self.json_handler.setFormatter(factory(**spec))
        self.configured_stream = io.StringIO()
        self.configured = [
            handler
            for handler in logging.getLogger().handlers
            if isinstance(handler, logging.StreamHandler)
            and isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
        ]
        assert self.configured, "the settings' console handler is not on the root logger"
        self._old_streams: list = []

    def __enter__(self) -> LogCapture:
        self._old_streams = [handler.setStream(self.configured_stream) for handler in self.configured]
        logging.getLogger().addHandler(self.json_handler)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self.json_handler)
        for handler, stream in zip(self.configured, self._old_streams, strict=True):
            handler.setStream(stream)

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.json_stream.getvalue().splitlines() if line.startswith("{")]

    def configured_text(self) -> str:
        return self.configured_stream.getvalue()

    def text(self) -> str:
        return self.json_stream.getvalue() + self.configured_stream.getvalue()
