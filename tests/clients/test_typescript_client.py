"""A TypeScript client (openapi-typescript's types + openapi-fetch) runs a real flow: flow.ts.

The types are generated into a temporary folder from the schema the live server answers (nothing
is committed); tsc compiles flow.ts against them in strict mode, so a request or response the
schema describes wrongly fails the compile; node then runs the flow, which prints a JSON summary.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.clients.live_api import CLIENTS_DIR, NODE_MODULES, PNG_SIGNATURE, png_bytes, require_node_tools, run_checked

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def compiled_flow(live, tmp_path_factory):
    """flow.ts compiled against the live schema's types: the path of the JavaScript to run."""
    node = require_node_tools()
    root = tmp_path_factory.mktemp("typescript-client")
    (root / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    (root / "package.json").write_text('{"type": "module", "private": true}\n')
    for name in ("flow.ts", "tsconfig.json"):
        shutil.copy(CLIENTS_DIR / name, root / name)
    # Fields with a default are optional in a request (the server fills them): not "non-nullable".
    generate = [str(NODE_MODULES / "openapi-typescript/bin/cli.js"), str(live.schema_path), "-o", "schema.d.ts"]
    run_checked([node, *generate, "--default-non-nullable", "false"], cwd=root)
    run_checked([node, str(NODE_MODULES / "typescript/bin/tsc"), "-p", "tsconfig.json"], cwd=root)
    return node, root / "out" / "flow.js"


def test_flow_runs_against_the_live_server(compiled_flow, live, token, tiny_model, tmp_path):
    node, flow = compiled_flow
    png = tmp_path / "kite.png"
    png.write_bytes(png_bytes("orange"))
    env = {**os.environ, "IMAGINEER_API_URL": live.url, "IMAGINEER_API_TOKEN": token, "UPLOAD_PNG": str(png)}
    summary = json.loads(run_checked([node, str(flow)], cwd=flow.parent, env=env).strip().splitlines()[-1])

    assert "tiny-sd" in summary["models"]
    upload = summary["upload"]
    assert (upload["status"], upload["width"], upload["format"], upload["duplicate"]) == (201, 16, "PNG", False)
    job = summary["job"]
    assert job["start_status"] == 202
    assert job["location"] == job["url"] and job["location_answers"] == job["id"]
    assert job["status"] == "succeeded", (job["error_message"], live.worker.text[-3000:])
    assert summary["download"]["status"] == 200
    assert bytes(summary["download"]["signature"]) == PNG_SIGNATURE
    refused = summary["refused"]
    assert (refused["status"], refused["code"], refused["fields"]) == (400, "validation_error", ["steps"])
    assert refused["trace_id"] == refused["request_id"]
    assert token not in live.output()  # the token never reaches a log line
