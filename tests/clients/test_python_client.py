"""A Python client generated from /api/schema/ with openapi-python-client runs a real flow.

The client is generated into a temporary folder from the schema the live server answers (nothing
is committed), imported, and used as a client developer would: its typed functions and models.
"""

from __future__ import annotations

import importlib
import io
import os
import pkgutil
import sys
import time
from types import ModuleType

import pytest

from tests.clients.live_api import CLIENTS_DIR, PNG_SIGNATURE, png_bytes, run_checked

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PACKAGE = "imagineer_api_client"
FOLLOW_SECONDS = 120


@pytest.fixture(scope="module")
def generated(live, tmp_path_factory) -> ModuleType:
    """openapi-python-client's package for the live schema, importable as `imagineer_api_client`."""
    root = tmp_path_factory.mktemp("python-client")
    bin_dir = os.path.dirname(sys.executable)  # the post hooks run this environment's ruff
    run_checked(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(live.schema_path),
            "--output-path",
            str(root / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(CLIENTS_DIR / "openapi-python-client.yaml"),
            "--fail-on-warning",
        ],
        cwd=root,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
    )
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def api(module: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{module}")


@pytest.fixture
def client(generated, live, token):
    return generated.AuthenticatedClient(
        base_url=live.url, token=token, prefix="Token", raise_on_unexpected_status=True, timeout=60
    )


def test_every_generated_module_imports(generated):
    broken = {}
    for module in pkgutil.walk_packages(generated.__path__, PACKAGE + "."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # a generator bug shows as any import-time error
            broken[module.name] = f"{type(exc).__name__}: {exc}"
    assert not broken, broken


def test_flow_lists_models_uploads_generates_and_downloads(client, live, tiny_model):
    models = api("api.generation.generation_models_list").sync(client=client)
    assert "tiny-sd" in [model.name for model in models.results]

    types = api("types")
    upload_request = api("models").ImageUploadRequest(
        file=types.File(payload=io.BytesIO(png_bytes()), file_name="kite.png", mime_type="image/png"),
        prompt="an uploaded kite",
    )
    uploaded = api("api.images.images_create").sync_detailed(client=client, body=upload_request)
    assert uploaded.status_code == 201, uploaded.content
    assert (uploaded.parsed.width, uploaded.parsed.format_, uploaded.parsed.prompt) == (16, "PNG", "an uploaded kite")
    assert uploaded.parsed.duplicate is False

    job_request = api("models").GenerationJobCreateRequest(
        prompt="a red kite", model="tiny-sd", steps=2, width=64, height=64, seed=7
    )
    started = api("api.generation.generation_jobs_create").sync_detailed(client=client, body=job_request)
    assert started.status_code == 202, started.content
    assert started.headers["Location"] == started.parsed.url
    followed = client.get_httpx_client().get(started.headers["Location"])  # the 202 names where to follow it
    assert followed.json()["id"] == started.parsed.id
    job = follow(client, started.parsed.id)
    assert job.status == api("models").JobStatusEnum.SUCCEEDED, (job.error_message, live.worker.text[-3000:])

    file = api("api.images.images_file_retrieve").sync(id=job.image_ids[0], client=client)
    assert isinstance(file, types.File)
    assert file.payload.read(8) == PNG_SIGNATURE
    assert client.token not in live.output()  # the token never reaches a log line


def test_a_refused_job_reads_as_the_typed_error_envelope(client):
    refused = api("api.generation.generation_jobs_create").sync_detailed(
        client=client, body=api("models").GenerationJobCreateRequest(prompt="a kite", steps=0)
    )
    assert refused.status_code == 400
    envelope = refused.parsed
    assert isinstance(envelope, api("models").ErrorEnvelope)
    assert envelope.error.code == "validation_error"
    assert "steps" in envelope.error.message
    assert list(envelope.error.details["fields"]) == ["steps"]
    assert envelope.error.trace_id == refused.headers["X-Request-ID"]


def test_an_unknown_model_reads_as_the_typed_error_envelope(client):
    refused = api("api.generation.generation_jobs_create").sync_detailed(
        client=client, body=api("models").GenerationJobCreateRequest(prompt="a kite", model="no-such-model")
    )
    assert refused.status_code == 400
    assert isinstance(refused.parsed, api("models").ErrorEnvelope)
    assert "no-such-model" in refused.parsed.error.message


def follow(client, job_id: int):
    """Poll the job with the generated client until it has ended."""
    retrieve = api("api.generation.generation_jobs_retrieve")
    final = {"succeeded", "failed", "cancelled"}
    deadline = time.monotonic() + FOLLOW_SECONDS
    job = retrieve.sync(id=job_id, client=client)
    while job.status.value not in final:
        assert time.monotonic() < deadline, f"job {job_id} still {job.status} after {FOLLOW_SECONDS}s"
        time.sleep(0.25)
        job = retrieve.sync(id=job_id, client=client)
    return job
