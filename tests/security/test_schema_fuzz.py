"""Generated requests against the OpenAPI schema (/api/schema/): no 5xx, every answer as documented.

schemathesis builds requests for every operation of the served schema — valid ones (positive) and
ones that break it (negative: wrong types, missing fields, out-of-range numbers) — and sends them
to the real WSGI application in-process, with no credentials and with an admin's token. Each
answer must not be a server error (not_a_server_error), must have a documented status
(status_code_conformance: success codes per view, 4XX with the error envelope everywhere, see
imagineer/core/schema.py) and must match the schema of that status (response_schema_conformance).

- Ids resolve: a few objects of every kind are seeded, and path parameters are drawn from them
  (positive mode) as well as generated (so unknown and absurd ids are tried too).
- Nothing is excluded. Multipart bodies (image and LoRA uploads) are generated as random bytes,
  which exercises the refusals; hostile files on purpose are tests/security/test_hostile_inputs.py.
- Writes that start jobs record them in the database only: a plain (non-transactional) django_db
  test never runs on_commit callbacks, where tasks are sent, so nothing diffuses, trains or
  scrapes. The one direct send (disk-stats refresh) goes to the test run's broker while no worker
  runs; a later worker test purges it.
- DELETE operations run last, so the seeded objects are there for everything else; each case runs
  in a savepoint, so a database error fails that case alone.
- Deterministic by default (derandomized: CI sends the same ~1000 cases each run);
  IMAGINEER_FUZZ_EXAMPLES and IMAGINEER_FUZZ_SEED make a longer or different run (bench/fuzz_api.py).

schemathesis's own pytest integration (`schemathesis.pytest.from_fixture`) fails on pytest 9
(it rewrites `Function._nodeid`), so the operations are driven here with `as_strategy` and
Hypothesis directly; the checks are schemathesis's.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.core import signals
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from albums import services as albums
from albums.models import Album
from generation import services as generation
from generation.models import DiffusionModel, Lora
from imagineer.ops.models import PurgeRun, RetentionPolicy, RetentionTarget
from imagineer.ops.services.bug_reports import submit_bug_report
from labeling import services as labeling
from labeling.models import Label, LabelType
from legacy.models import ImportRun
from tests.assertions import assert_envelope
from tests.factories import AdminFactory, AlbumFactory, make_image
from training.models import TrainingRun
from training.services import scrapes as scraping

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("IMAGINEER_FUZZ_EXAMPLES", "3"))
FUZZ_SEED = os.environ.get("IMAGINEER_FUZZ_SEED")
SHRINK = bool(os.environ.get("IMAGINEER_FUZZ_SHRINK"))
REPORT_CHARS = 4000  # of each failure: a generated body can be 100 KB
MIN_CASES = 250  # per run: fewer means operations went missing or generation broke

# What a path parameter names, by the path before it.
SEEDED_KIND = {
    "/api/images/{id}": "image",
    "/api/albums/{id}": "album",
    "{image_pk}": "image",
    "{album_pk}": "album",
    "/api/images/{image_pk}/labels/{id}": "label",
    "/api/generation/jobs/{id}": "generation_job",
    "/api/generation/loras/{id}": "lora",
    "/api/generation/models/{name}": "model",
    "/api/generation/set-runs/{id}": "set_run",
    "/api/jobs/thumbnails/{id}": "thumbnail_job",
    "/api/labeling/runs/{id}": "labeling_run",
    "/api/training/runs/{id}": "training_run",
    "/api/training/scrapes/{id}": "scrape_job",
    "/api/bug-reports/{report_id}": "bug_report",
    "/api/admin/purge-runs/{id}": "purge_run",
    "/api/admin/import-runs/{id}": "import_run",
}


@dataclass
class Seeded:
    token: str
    ids: dict[str, list] = field(default_factory=dict)


@pytest.fixture
def in_process_app(db):
    """The WSGI application, called in this test's database transaction.

    Django closes "obsolete" connections at each request's start and end, and a connection inside
    the test's transaction looks obsolete; its own test client disconnects the same handlers.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def loopback_only(monkeypatch) -> list:
    """Connections and lookups off 127.0.0.0/8 are refused and recorded: fuzzed writes reach no one."""
    refused: list = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def checked_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(address[0]).is_loopback:
            refused.append(address)
            raise ConnectionRefusedError(f"tests reach 127.0.0.0/8 only, not {address[0]}")
        return connect(sock, address)

    def checked_getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost") and not _is_loopback_literal(host):
            refused.append(host)
            raise socket.gaierror(f"tests resolve no names ({host})")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", checked_connect)
    monkeypatch.setattr(socket, "getaddrinfo", checked_getaddrinfo)
    return refused


def _is_loopback_literal(host) -> bool:
    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def seeded(db) -> Seeded:
    """A few objects of every kind an API path names, visible and hidden ones."""
    admin = AdminFactory()
    public_album = AlbumFactory()
    private_album = AlbumFactory(is_public=False)
    template = AlbumFactory(
        is_set_template=True,
        template_items=[{"card": "Ace"}, {"card": "King"}],
        prompt_template="{card} of spades",
        example_theme="steampunk",
    )
    public = make_image(album=public_album, prompt="a lighthouse")
    private = make_image(album=private_album, is_public=False)
    nsfw = make_image(album=public_album, is_nsfw=True)
    label = Label.objects.create(image=public, text="lighthouse", label_type=LabelType.TAG)
    model = DiffusionModel.objects.create(
        name="fuzz-sd1", source_type="diffusers_dir", source="models/fuzz-sd1", family="sd1", is_default=True
    )
    lora = Lora.objects.create(
        name="Fuzz LoRA", slug="fuzz-lora", file="loras/fuzz.safetensors", sha256="0" * 64, family="sd1"
    )
    # Rows only: no run trains (too few captions for the service's checks, and no worker).
    training_run = TrainingRun.objects.create(name="fuzz run", model=model, created_by=admin)
    training_run.albums.set([public_album])
    policy = RetentionPolicy.objects.create(name="Fuzz policy", target=RetentionTarget.BUG_REPORTS, max_age_days=30)
    return Seeded(
        token=Token.objects.create(user=admin).key,
        ids={
            "image": [public.pk, private.pk, nsfw.pk],
            "album": [public_album.pk, private_album.pk, template.pk],
            "label": [label.pk],
            "model": [model.name],
            "lora": [lora.pk],
            "generation_job": [generation.start_generation_job(user=admin, model=model, prompt="a lighthouse").pk],
            "set_run": [generation.start_set_run(template, user=admin, theme="noir", model=model).pk],
            "thumbnail_job": [albums.start_thumbnail_rebuild([public.pk], user=admin).pk],
            "labeling_run": [labeling.start_labeling_run(album=public_album, labeler="nudenet", user=admin).pk],
            "training_run": [training_run.pk],
            "scrape_job": [scraping.start_scrape_job(url="http://127.0.0.1:9/", user=admin).pk],
            "bug_report": [submit_bug_report(admin, {"description": "seeded"}, request_id="fuzz").report_id],
            "purge_run": [PurgeRun.objects.create(policy=policy, target=policy.target, max_age_days=30).pk],
            "import_run": [ImportRun.objects.create(created_by=admin).pk],
        },
    )


def seeded_path_parameters(operation, seeded: Seeded) -> list[dict]:
    """Every combination of seeded ids for the operation's path parameters ([] when it has none)."""
    names = [parameter.name for parameter in operation.path_parameters]
    if not names:
        return []
    choices = []
    for name in names:
        before = operation.path.split("{" + name + "}")[0].rstrip("/")
        kind = SEEDED_KIND.get("{" + name + "}") or SEEDED_KIND.get(f"{before}/{{{name}}}")
        assert kind is not None, f"{operation.label}: no seeded object for {{{name}}}; add it to SEEDED_KIND"
        choices.append(seeded.ids[kind])
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def fuzz_settings(function):
    function = settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=FUZZ_SEED is None,
        phases=[Phase.generate, Phase.shrink] if SHRINK else [Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(function)
    return seed(int(FUZZ_SEED))(function) if FUZZ_SEED is not None else function


def strategies_for(operation, seeded: Seeded):
    """(label, strategy) pairs: positive with seeded ids, positive as generated, negative."""
    combos = seeded_path_parameters(operation, seeded)
    if combos:
        yield (
            "positive, seeded ids",
            st.sampled_from(combos).flatmap(
                lambda ids: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ids)
            ),
        )
    yield "positive", operation.as_strategy(GenerationMode.POSITIVE)
    yield "negative", operation.as_strategy(GenerationMode.NEGATIVE)


def send_cases(operation, strategy, headers: dict[str, str], cases: dict[str, int]) -> None:
    @fuzz_settings
    @given(case=strategy)
    def send(case):
        cases[operation.label] += 1
        # A savepoint per case: on PostgreSQL one database error would otherwise abort the test's
        # transaction and fail every later case with it, hiding which request was the cause.
        with transaction.atomic():
            case.call_and_validate(checks=CHECKS, headers=headers)

    send()


def fuzz(app, seeded: Seeded, headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    cases: dict[str, int] = {operation.label: 0 for operation in operations}
    failures: list[str] = []
    for operation in operations:
        for mode, strategy in strategies_for(operation, seeded):
            try:
                send_cases(operation, strategy, headers, cases)
            except Unsatisfiable:
                # Nothing to break: an operation without parameters or body has no negative case.
                assert mode == "negative", f"{operation.label} ({mode}): no case could be generated"
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation reports
                failures.append(f"{operation.label} ({mode}):\n{str(exc)[:REPORT_CHARS]}")
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
    assert all(cases.values()), [label for label, count in cases.items() if not count]
    assert sum(cases.values()) >= MIN_CASES, cases
    print(f"{sum(cases.values())} cases over {len(cases)} operations")


def test_anonymous_requests_are_answered_as_documented(in_process_app, seeded, loopback_only):
    fuzz(in_process_app, seeded, {})
    assert loopback_only == []


def test_admin_requests_are_answered_as_documented(in_process_app, seeded, loopback_only):
    fuzz(in_process_app, seeded, {"Authorization": f"Token {seeded.token}"})
    assert loopback_only == []


def test_schema_is_the_same_whoever_fetches_it(in_process_app, seeded):
    """Admin-only fields are described, not required; the schema does not vary by reader."""
    anonymous = schemathesis.openapi.from_wsgi("/api/schema/?format=json", in_process_app).raw_schema
    admin = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", in_process_app, headers={"Authorization": f"Token {seeded.token}"}
    ).raw_schema
    assert anonymous == admin
    for path, item in admin["paths"].items():
        for method, operation in item.items():
            envelope = operation["responses"]["4XX"]["content"]["application/json"]["schema"]
            assert envelope == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path)
    image = admin["components"]["schemas"]["Image"]
    assert "nsfw_rating" in image["properties"] and "nsfw_rating" not in image["required"]
    training_run = admin["components"]["schemas"]["TrainingRun"]
    assert "albums" in training_run["properties"] and "albums" not in training_run["required"]
    assert "name" in training_run["required"]


# --- What the fuzzing found, pinned: each was a 500 -------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/jobs/thumbnails/x1/cancel/", "/api/generation/set-runs/x1/cancel/"],
)
def test_a_non_numeric_id_is_not_found(admin_client_api, path):
    assert_envelope(admin_client_api.post(path, {}, format="json"), 404, "not_found")


def test_an_id_past_the_database_range_is_a_validation_error(admin_client_api):
    error = assert_envelope(
        admin_client_api.post("/api/images/bulk-flags/", {"image_ids": [2**70], "is_nsfw": True}, format="json"),
        400,
        "validation_error",
    )
    assert "image_ids" in error["details"]["fields"]


def test_deleting_a_template_that_set_runs_were_made_from_is_a_conflict(admin_client_api, seeded):
    template = Album.objects.get(is_set_template=True)
    error = assert_envelope(admin_client_api.delete(f"/api/albums/{template.pk}/"), 409, "album_in_use")
    assert "set run" in error["message"] and Album.objects.filter(pk=template.pk).exists()


def test_too_many_form_fields_is_a_client_error(admin_client_api):
    """Only uploads parse form fields (multipart); every other body is JSON."""
    fields = {"file": SimpleUploadedFile("a.png", b"x"), "extra": [str(n) for n in range(1200)]}
    response = admin_client_api.post("/api/images/", fields, format="multipart")
    assert "fields" in assert_envelope(response, 400, "malformed_request")["message"]


def test_a_json_body_over_the_request_limit_is_413(admin_client_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = {"name": "big", "description": "x" * 20_000}
    assert_envelope(admin_client_api.post("/api/albums/", body, format="json"), 413, "request_too_large")


@pytest.mark.parametrize("moment", ["0624-07-16T08:58:43+23:27", "1970-01-01T00:00:00-19:00"])
def test_a_utc_offset_postgresql_refuses_still_filters(api_client, seeded, moment):
    response = api_client.get("/api/images/", {"created_after": moment})
    assert response.status_code == 200 and response.json()["count"] >= 1


def test_a_moment_before_year_one_in_utc_is_a_validation_error(api_client):
    assert_envelope(api_client.get("/api/images/", {"created_before": "0001-01-01T00:00:00+05:00"}), 400)
