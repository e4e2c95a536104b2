"""What tests check on any answer or folder: the error envelope of docs/API.md, and the files stored."""

from pathlib import Path


def files_under(root: Path) -> list[str]:
    """Every file below `root`, relative and sorted (the readiness probe's marker left out)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".readyz" not in p.parts)


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    """The response is `status` with the one error envelope (code, message, details, trace_id, timestamp)."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details", "trace_id", "timestamp"}, error
    assert error["message"]
    assert error["trace_id"] == response["X-Request-ID"]
    if code is not None:
        assert error["code"] == code, error
    return error
