"""A local stand-in for the Anthropic Messages API on 127.0.0.1, for the real SDK to talk to.

Each request takes the next scripted reply (status, JSON body, delay, headers); when the script
runs out, the last reply repeats (so "500 forever" is one scripted 500). Every request is kept,
headers and JSON body, so tests can check what the SDK sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int
    body: dict
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


def message_body(text: str, *, input_tokens: int = 1200, output_tokens: int = 80, stop_reason: str = "end_turn"):
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def answer(caption="A watercolor of a mountain lake at dawn.", tags=("watercolor", "mountain lake"), rating="SAFE"):
    return Reply(200, message_body(json.dumps({"caption": caption, "tags": list(tags), "nsfw_rating": rating})))


def error(status: int, kind: str, message: str, **headers) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}}, headers=headers)


class FakeClaude:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with fake._lock:
                    fake.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "json": json.loads(raw),
                        }
                    )
                    reply = fake.script.pop(0) if len(fake.script) > 1 else (fake.script[0] if fake.script else None)
                if reply is None:
                    reply = answer()
                if reply.delay:
                    time.sleep(reply.delay)
                data = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name.replace("_", "-"), str(value))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeClaude:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def then(self, *replies: Reply) -> FakeClaude:
        self.script.extend(replies)
        return self
