"""Who may do what: every API route × method × role answers the status written down here.

MATRIX is written by hand, keyed by (method, path template as the OpenAPI schema spells it), one
Case or a few per key. Routes the schema does not describe (/healthz, /readyz, the API root, the
schema and docs pages) are keyed by the template the URL conf gives them. A route or method added
to the code without a row here, or a row for something the code no longer has, fails
`test_matrix_covers_*`, naming it.

Roles: "anon" (no credentials), "user" (signed in; owns the private image, the public images the
NSFW check has not cleared yet or failed, and the generation job),
"other" (signed in, owns nothing), "admin" (is_staff). Path parameters name a seeded object
(conftest.matrix_world), chosen to show the visibility rules of docs/API.md: an object a role may
not see answers 404, and the same 404, word for word, as an id that does not exist; a non-admin
writing to an object they can see gets 403; anonymous writes get 401.

What an admin's write is asserted to answer, and why: each write gets a body that is valid, and
the admin's status is the endpoint's success (200/201/202/204), so the matrix shows the admin is
let through *and* the endpoint works for them. Every request runs in a savepoint that is rolled
back afterwards (helpers.answer_and_forget), so each role meets the same world and the jobs these
writes create (thumbnail rebuilds, labeling, generation, set and training runs, scrapes) never
reach a queue: their on_commit send is discarded with the savepoint. The disk refresh finds a
refresh already requested, so it too sends nothing. Three writes cannot succeed without files the
matrix does not make: image and LoRA uploads (multipart) and a training run's logs; the first two
get an empty body, so an admin's 400 (validation, past authorization) is asserted against the
others' 401/403.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.conf import settings

from tests.security.helpers import MISSING, MISSING_ID, ROLES, answer_and_forget
from tests.security.routes import HTTP_METHODS, routed_operations, schema_operations

pytestmark = pytest.mark.django_db


def expect(anon: int, user: int, other: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anon, user, other, admin), strict=True))


EVERYONE = expect(200, 200, 200, 200)
SIGNED_IN = expect(401, 200, 200, 200)
OWNER_SEES = expect(404, 200, 404, 200)  # the owner's private image (and what hangs off it)
ADMIN_SEES = expect(404, 404, 404, 200)  # NSFW images, private albums, disabled LoRAs


def admin_only(ok: int = 200) -> dict[str, int]:
    return expect(401, 403, 403, ok)


def admin_writes_seen(ok: int) -> dict[str, int]:
    """A write to an object every signed-in role can see: 403 for non-admins."""
    return expect(401, 403, 403, ok)


def admin_writes_owners(ok: int) -> dict[str, int]:
    """A write to the owner's private object: the owner sees it (403), "other" does not (404)."""
    return expect(401, 403, 404, ok)


def admin_writes_hidden(ok: int) -> dict[str, int]:
    return expect(401, 404, 404, ok)


Body = dict | Callable[[dict], dict] | None


@dataclass(frozen=True)
class Case:
    expected: dict[str, int]
    args: dict[str, str] = field(default_factory=dict)  # path parameter → seeded object name
    body: Body = None
    format: str = "json"


def image_ids(*names: str) -> Callable[[dict], dict]:
    return lambda ids: {"image_ids": [ids[name] for name in names]}


ALBUM, IMAGE = {"id": "album_public"}, {"id": "image_public"}
# The schema answers in its own formats (YAML, OpenAPI JSON) and the docs pages in HTML, errors too.
DOCS_PAGES = ("/api/schema/", "/api/docs/", "/api/redoc/")
PRIVATE_ALBUM, OWNERS_IMAGE, NSFW_IMAGE = {"id": "album_private"}, {"id": "image_private"}, {"id": "image_nsfw"}
# Public images the NSFW check has not cleared: the owner's and the admins' only, as a private one.
UNCHECKED_IMAGES = ({"id": "image_pending"}, {"id": "image_check_failed"})

MATRIX: dict[tuple[str, str], Case | tuple[Case, ...]] = {
    # --- outside the schema
    ("GET", "/healthz"): Case(EVERYONE),
    ("GET", "/readyz"): Case(EVERYONE),
    ("GET", "/api/"): Case(EVERYONE),
    ("GET", "/api/schema/"): Case(EVERYONE),
    ("GET", "/api/docs/"): Case(EVERYONE),
    ("GET", "/api/redoc/"): Case(EVERYONE),
    # --- the caller's own account
    ("GET", "/api/auth/me/"): Case(SIGNED_IN),
    ("GET", "/api/auth/csrf/"): Case(EVERYONE),
    # --- images
    ("GET", "/api/images/"): Case(EVERYONE),
    ("POST", "/api/images/"): Case(admin_only(400), body={}, format="multipart"),
    ("GET", "/api/images/{id}/"): (
        Case(EVERYONE, IMAGE),
        Case(OWNER_SEES, OWNERS_IMAGE),
        Case(ADMIN_SEES, NSFW_IMAGE),
        *(Case(OWNER_SEES, unchecked) for unchecked in UNCHECKED_IMAGES),
    ),
    ("PATCH", "/api/images/{id}/"): (
        Case(admin_writes_seen(200), IMAGE, {"prompt": "renamed"}),
        Case(admin_writes_owners(200), OWNERS_IMAGE, {"prompt": "renamed"}),
        Case(admin_writes_hidden(200), NSFW_IMAGE, {"is_nsfw": False}),
        Case(admin_writes_owners(200), {"id": "image_check_failed"}, {"prompt": "renamed"}),
    ),
    ("DELETE", "/api/images/{id}/"): (
        Case(admin_writes_owners(204), OWNERS_IMAGE),
        Case(admin_writes_hidden(204), NSFW_IMAGE),
    ),
    ("GET", "/api/images/{id}/file/"): (
        Case(EVERYONE, IMAGE),
        Case(OWNER_SEES, OWNERS_IMAGE),
        Case(ADMIN_SEES, NSFW_IMAGE),
        *(Case(OWNER_SEES, unchecked) for unchecked in UNCHECKED_IMAGES),
    ),
    ("GET", "/api/images/{id}/thumbnail/"): (
        Case(EVERYONE, IMAGE),
        Case(OWNER_SEES, OWNERS_IMAGE),
        Case(ADMIN_SEES, NSFW_IMAGE),
        *(Case(OWNER_SEES, unchecked) for unchecked in UNCHECKED_IMAGES),
    ),
    ("POST", "/api/images/bulk-flags/"): Case(
        admin_only(200), body=lambda ids: {**image_ids("image_public")(ids), "is_nsfw": False}
    ),
    ("POST", "/api/images/rebuild-thumbnails/"): Case(admin_only(202), body=image_ids("image_public")),
    # --- labels
    ("GET", "/api/images/{image_pk}/labels/"): (
        Case(OWNER_SEES, {"image_pk": "image_private"}),
        Case(ADMIN_SEES, {"image_pk": "image_nsfw"}),
        Case(OWNER_SEES, {"image_pk": "image_pending"}),
        Case(OWNER_SEES, {"image_pk": "image_check_failed"}),
    ),
    # A POST to a list is an admin-only write: refused before the image is looked up (see docs/API.md).
    ("POST", "/api/images/{image_pk}/labels/"): (
        Case(admin_only(201), {"image_pk": "image_public"}, {"text": "a new tag"}),
        Case(admin_only(201), {"image_pk": "image_nsfw"}, {"text": "a new tag"}),
    ),
    ("GET", "/api/images/{image_pk}/labels/{id}/"): (
        Case(EVERYONE, {"image_pk": "image_public", "id": "label_public"}),
        Case(OWNER_SEES, {"image_pk": "image_private", "id": "label_private"}),
        Case(ADMIN_SEES, {"image_pk": "image_nsfw", "id": "label_nsfw"}),
        Case(expect(404, 404, 404, 404), {"image_pk": "image_public", "id": "label_nsfw"}),  # not this image's
    ),
    ("PATCH", "/api/images/{image_pk}/labels/{id}/"): (
        Case(admin_writes_seen(200), {"image_pk": "image_public", "id": "label_public"}, {"text": "renamed"}),
        Case(admin_writes_owners(200), {"image_pk": "image_private", "id": "label_private"}, {"text": "renamed"}),
    ),
    ("DELETE", "/api/images/{image_pk}/labels/{id}/"): Case(
        admin_writes_hidden(204), {"image_pk": "image_nsfw", "id": "label_nsfw"}
    ),
    ("POST", "/api/images/{image_pk}/label/"): Case(
        admin_only(202), {"image_pk": "image_nsfw"}, {"labeler": "nudenet"}
    ),
    ("POST", "/api/albums/{album_pk}/label/"): Case(
        admin_only(202), {"album_pk": "album_private"}, {"labeler": "nudenet"}
    ),
    ("GET", "/api/albums/{album_pk}/labeling/analytics/"): Case(admin_only(), {"album_pk": "album_private"}),
    ("GET", "/api/labels/stats/"): Case(EVERYONE),
    ("GET", "/api/labels/top-tags/"): Case(EVERYONE),
    ("GET", "/api/labels/distribution/"): Case(EVERYONE),
    ("GET", "/api/labeling/runs/"): Case(admin_only()),
    ("GET", "/api/labeling/runs/{id}/"): Case(admin_only(), {"id": "labeling_run_queued"}),
    ("POST", "/api/labeling/runs/{id}/cancel/"): Case(admin_only(), {"id": "labeling_run_queued"}),
    ("POST", "/api/labeling/runs/{id}/retry/"): Case(admin_only(202), {"id": "labeling_run_failed"}),
    # --- albums
    ("GET", "/api/albums/"): Case(EVERYONE),
    ("POST", "/api/albums/"): Case(admin_only(201), body={"name": "A new album"}),
    ("GET", "/api/albums/{id}/"): (Case(EVERYONE, ALBUM), Case(ADMIN_SEES, PRIVATE_ALBUM)),
    ("PATCH", "/api/albums/{id}/"): (
        Case(admin_writes_seen(200), ALBUM, {"description": "changed"}),
        Case(admin_writes_hidden(200), PRIVATE_ALBUM, {"description": "changed"}),
    ),
    ("DELETE", "/api/albums/{id}/"): (
        Case(admin_writes_seen(204), ALBUM),
        Case(admin_writes_hidden(204), PRIVATE_ALBUM),
    ),
    ("GET", "/api/albums/{id}/images/"): (Case(EVERYONE, ALBUM), Case(ADMIN_SEES, PRIVATE_ALBUM)),
    ("POST", "/api/albums/{id}/images/"): (
        Case(admin_writes_seen(200), ALBUM, image_ids("image_public")),
        Case(admin_writes_hidden(200), PRIVATE_ALBUM, image_ids("image_nsfw")),
    ),
    ("POST", "/api/albums/{id}/images/remove/"): (
        Case(admin_writes_seen(200), ALBUM, image_ids("image_nsfw")),
        Case(admin_writes_hidden(200), PRIVATE_ALBUM, image_ids("image_public")),
    ),
    ("POST", "/api/albums/{id}/reorder/"): (
        Case(admin_writes_seen(200), ALBUM, image_ids("image_nsfw", "image_public")),
        Case(admin_writes_hidden(200), PRIVATE_ALBUM, image_ids("image_public")),
    ),
    ("POST", "/api/albums/{id}/generate/"): Case(admin_only(202), {"id": "template"}, {"theme": "steampunk"}),
    ("GET", "/api/jobs/thumbnails/"): Case(admin_only()),
    ("GET", "/api/jobs/thumbnails/{id}/"): Case(admin_only(), {"id": "thumbnail_job"}),
    ("POST", "/api/jobs/thumbnails/{id}/cancel/"): Case(admin_only(), {"id": "thumbnail_job"}),
    # --- generation
    ("GET", "/api/generation/models/"): Case(EVERYONE),
    ("GET", "/api/generation/models/{name}/"): Case(EVERYONE, {"name": "model"}),
    ("GET", "/api/generation/loras/"): Case(EVERYONE),
    ("POST", "/api/generation/loras/"): Case(admin_only(400), body={}, format="multipart"),
    ("GET", "/api/generation/loras/{id}/"): (Case(EVERYONE, {"id": "lora"}), Case(ADMIN_SEES, {"id": "lora_disabled"})),
    ("PATCH", "/api/generation/loras/{id}/"): (
        Case(admin_writes_seen(200), {"id": "lora"}, {"description": "changed"}),
        Case(admin_writes_hidden(200), {"id": "lora_disabled"}, {"enabled": True}),
    ),
    ("DELETE", "/api/generation/loras/{id}/"): Case(admin_writes_hidden(204), {"id": "lora_disabled"}),
    ("GET", "/api/generation/jobs/"): Case(SIGNED_IN),
    ("POST", "/api/generation/jobs/"): Case(expect(401, 202, 202, 202), body={"prompt": "a lighthouse"}),
    ("GET", "/api/generation/jobs/{id}/"): Case(expect(401, 200, 404, 200), {"id": "generation_job"}),
    ("POST", "/api/generation/jobs/{id}/cancel/"): Case(expect(401, 200, 404, 200), {"id": "generation_job"}),
    ("POST", "/api/generation/jobs/{id}/rerun/"): Case(expect(401, 202, 404, 202), {"id": "generation_job"}),
    ("POST", "/api/generation/jobs/{id}/retry/"): Case(expect(401, 202, 404, 202), {"id": "generation_job_failed"}),
    ("GET", "/api/generation/set-runs/"): Case(admin_only()),
    ("GET", "/api/generation/set-runs/{id}/"): Case(admin_only(), {"id": "set_run"}),
    ("POST", "/api/generation/set-runs/{id}/cancel/"): Case(admin_only(), {"id": "set_run"}),
    ("POST", "/api/generation/set-runs/{id}/retry/"): Case(admin_only(202), {"id": "set_run_failed"}),
    # --- training and scraping
    ("GET", "/api/training/runs/"): Case(EVERYONE),
    ("POST", "/api/training/runs/"): Case(
        admin_only(202), body=lambda ids: {"name": "New LoRA", "albums": [ids["album_public"]]}
    ),
    ("GET", "/api/training/runs/{id}/"): Case(EVERYONE, {"id": "training_run_queued"}),
    ("POST", "/api/training/runs/{id}/cancel/"): Case(admin_only(), {"id": "training_run_queued"}),
    ("POST", "/api/training/runs/{id}/retry/"): Case(admin_only(202), {"id": "training_run_failed"}),
    ("GET", "/api/training/runs/{id}/logs/"): Case(admin_only(), {"id": "training_run_failed"}),
    ("GET", "/api/training/scrapes/"): Case(admin_only()),
    ("POST", "/api/training/scrapes/"): Case(admin_only(202), body={"url": "http://127.0.0.1:9/start"}),
    ("GET", "/api/training/scrapes/{id}/"): Case(admin_only(), {"id": "scrape_job"}),
    ("POST", "/api/training/scrapes/{id}/cancel/"): Case(admin_only(), {"id": "scrape_job"}),
    # --- operations
    ("GET", "/api/admin/config/"): Case(admin_only()),
    ("GET", "/api/admin/config/cache/"): Case(admin_only()),
    ("POST", "/api/admin/config/reload/"): Case(admin_only()),
    ("GET", "/api/admin/disk-stats/"): Case(admin_only()),
    ("POST", "/api/admin/disk-stats/refresh/"): Case(admin_only(202)),
    ("GET", "/api/bug-reports/"): Case(admin_only()),
    ("POST", "/api/bug-reports/"): Case(admin_only(201), body={"description": "It broke again"}),
    ("GET", "/api/bug-reports/{report_id}/"): Case(admin_only(), {"report_id": "bug_report"}),
    ("PATCH", "/api/bug-reports/{report_id}/"): Case(admin_only(), {"report_id": "bug_report"}, {"status": "triaged"}),
    ("GET", "/api/admin/purge-runs/"): Case(admin_only()),
    ("GET", "/api/admin/purge-runs/{id}/"): Case(admin_only(), {"id": "purge_run"}),
    ("GET", "/api/admin/import-runs/"): Case(admin_only()),
    ("GET", "/api/admin/import-runs/{id}/"): Case(admin_only(), {"id": "import_run"}),
    ("POST", "/api/admin/purge-runs/{id}/cancel/"): Case(admin_only(), {"id": "purge_run"}),
    ("POST", "/api/admin/purge-runs/{id}/retry/"): Case(admin_only(202), {"id": "purge_run_failed"}),
    ("POST", "/api/admin/import-runs/{id}/cancel/"): Case(admin_only(), {"id": "import_run"}),
    ("POST", "/api/admin/import-runs/{id}/retry/"): Case(admin_only(202), {"id": "import_run_failed"}),
}


def cases() -> list[tuple[str, str, Case]]:
    return [
        (method, template, case)
        for (method, template), entry in MATRIX.items()
        for case in (entry if isinstance(entry, tuple) else (entry,))
    ]


def fill(template: str, args: dict[str, str], ids: dict, *, missing: str | None = None) -> str:
    values = {param: ids[name] for param, name in args.items()}
    if missing is not None:
        values[missing] = MISSING.get(args[missing], MISSING_ID)
    return template.format(**values)


def error_of(response) -> tuple | None:
    """What an error answer says (status, code, message); None for a body outside the envelope."""
    if not response["Content-Type"].startswith("application/json"):
        return None
    body = response.json()
    error = body.get("error") if isinstance(body, dict) and set(body) == {"error"} else None
    if not isinstance(error, dict) or set(error) != {"code", "message", "details", "trace_id", "timestamp"}:
        return None
    return response.status_code, error["code"], error["message"], json.dumps(error["details"], sort_keys=True)


def test_matrix_covers_every_schema_operation():
    schema, routed = schema_operations(), routed_operations()
    missing = sorted(schema - set(MATRIX))
    unknown = sorted(set(MATRIX) - schema - routed)
    assert missing == [], f"schema operations without a row in MATRIX: {missing}"
    assert unknown == [], f"MATRIX rows for operations neither the schema nor the URL conf has: {unknown}"


def test_matrix_covers_every_routed_view():
    """Routes the schema leaves out (health, docs) are in the matrix too: nothing is served unlisted."""
    missing = sorted(routed_operations() - set(MATRIX))
    assert missing == [], f"routed API operations without a row in MATRIX: {missing}"


def problems_of(client, role: str, method: str, template: str, case: Case, ids: dict) -> list[str]:
    """What is wrong with one answer: its status, its envelope, a path in it, a 404 that tells."""
    path = fill(template, case.args, ids)
    body = case.body(ids) if callable(case.body) else case.body
    response = answer_and_forget(client, method, path, body, format=case.format)
    status, content = response.status_code, getattr(response, "content_bytes", None) or response.content
    wrong = []
    if any(folder.encode() in content for folder in (str(settings.MEDIA_ROOT), str(settings.DATA_DIR))):
        wrong.append(f"{method} {path}: a server path in the answer")
    if status != case.expected[role]:
        return [*wrong, f"{method} {path}: {status}, expected {case.expected[role]} ({content[:200]!r})"]
    if status < 400 or not path.startswith("/api/"):
        return wrong
    error = error_of(response)
    if error is None:
        return [*wrong, f"{method} {path}: {status} outside the error envelope"]
    if status == 401 and response.get("WWW-Authenticate") != "Token":
        wrong.append(f"{method} {path}: 401 without WWW-Authenticate: Token")
    for param in case.args if status == 404 else ():
        # The 404 of a hidden object must not tell it apart from one that does not exist.
        twin = answer_and_forget(client, method, fill(template, case.args, ids, missing=param), body)
        if error_of(twin) != error:
            wrong.append(f"{method} {path}: 404 {error} differs from a missing {param}'s {error_of(twin)}")
    return wrong


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_the_role_as_the_matrix_says(role, roles, matrix_world, published_tasks):
    wrong = [
        problem
        for method, template, case in cases()
        for problem in problems_of(roles.clients[role], role, method, template, case, matrix_world)
    ]
    if published_tasks:
        wrong.append(f"tasks sent to the broker: {published_tasks}")
    assert wrong == [], "\n".join(wrong)


def test_methods_outside_the_matrix_answer_405_to_an_admin(roles, matrix_world):
    """The matrix's methods are the only ones served: any other is refused, even to an admin."""
    served: dict[str, set[str]] = {}
    for method, template, _ in cases():
        served.setdefault(template, set()).add(method)
    first_args = {template: case.args for _, template, case in reversed(cases())}
    wrong = []
    for template, methods in served.items():
        path = fill(template, first_args[template], matrix_world)
        for method in sorted(set(HTTP_METHODS) - methods):
            response = answer_and_forget(roles.clients["admin"], method, path, {})
            enveloped = path.startswith("/api/") and path not in DOCS_PAGES
            error = error_of(response) if enveloped else (405, "method_not_allowed", "")
            if response.status_code != 405 or error is None or error[1] != "method_not_allowed":
                wrong.append(f"{method} {path}: {response.status_code} {error}")
    assert wrong == [], "\n".join(wrong)
