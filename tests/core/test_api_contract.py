"""The API as a client generator meets it: one request content type per operation, 415 for any
other, error responses with the envelope, named enums, nullable fields, readable operation ids, and
errors in the envelope on the schema and docs pages too.

The schema's own validation (`spectacular --validate --fail-on-warn`) is
tests/core/test_health_and_schema.py::test_schema_generation_has_no_warnings.
"""

import re
import types
import typing

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from albums.models import Album, Image
from generation.models import Lora
from tests.assertions import assert_envelope, files_under
from tests.factories import image_bytes, make_image

pytestmark = pytest.mark.django_db

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
# The operations that take a file, and so multipart/form-data; every other body is JSON.
FILE_UPLOADS = {"images_create", "generation_loras_create"}
ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"


def _schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content[:500]
    return response.json()


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_every_request_body_has_exactly_one_content_type(api_client):
    offending = {
        operation["operationId"]: list(operation["requestBody"]["content"])
        for _, _, operation in _operations(_schema(api_client))
        if "requestBody" in operation and len(operation["requestBody"]["content"]) != 1
    }
    assert offending == {}, "operations offering several request content types (a generated client breaks)"


def test_file_uploads_take_multipart_and_every_other_body_json(api_client):
    content_types = {
        operation["operationId"]: next(iter(operation["requestBody"]["content"]))
        for _, _, operation in _operations(_schema(api_client))
        if "requestBody" in operation
    }
    multipart = {op for op, content_type in content_types.items() if content_type == "multipart/form-data"}
    assert multipart == FILE_UPLOADS
    assert set(content_types.values()) == {"application/json", "multipart/form-data"}


def test_a_json_operation_refuses_form_data_and_writes_nothing(admin_client_api):
    response = admin_client_api.generic(
        "POST", "/api/albums/", "name=Form+album", content_type="application/x-www-form-urlencoded"
    )
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert '"application/x-www-form-urlencoded"' in error["message"]
    assert "takes application/json" in error["message"]
    assert error["details"] == {"accepted": ["application/json"]}
    assert not Album.objects.exists()


def test_a_json_operation_refuses_multipart_and_writes_nothing(admin_client_api):
    response = admin_client_api.post("/api/albums/", {"name": "Multipart album"}, format="multipart")
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert '"multipart/form-data"' in error["message"] and "application/json" in error["message"]
    assert not Album.objects.exists()


def test_editing_an_image_takes_json_only(admin_client_api):
    image = make_image(prompt="before")
    response = admin_client_api.patch(f"/api/images/{image.pk}/", {"prompt": "after"}, format="multipart")
    assert_envelope(response, 415, "unsupported_media_type")
    image.refresh_from_db()
    assert image.prompt == "before"


def test_an_image_upload_refuses_json_and_stores_nothing(admin_client_api, media_root):
    response = admin_client_api.post("/api/images/", {"file": "aGVsbG8=", "prompt": "x"}, format="json")
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert '"application/json"' in error["message"] and "takes multipart/form-data" in error["message"]
    assert error["details"] == {"accepted": ["multipart/form-data"]}
    assert not Image.objects.exists() and files_under(media_root) == []


def test_an_image_upload_refuses_form_urlencoded(admin_client_api):
    response = admin_client_api.generic(
        "POST", "/api/images/", "prompt=x", content_type="application/x-www-form-urlencoded"
    )
    assert_envelope(response, 415, "unsupported_media_type")
    assert not Image.objects.exists()


def test_an_image_upload_in_multipart_is_stored(admin_client_api):
    upload = SimpleUploadedFile("a.png", image_bytes("PNG"), content_type="image/png")
    response = admin_client_api.post("/api/images/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert Image.objects.count() == 1


def test_a_lora_upload_refuses_json_and_stores_nothing(admin_client_api, media_root):
    response = admin_client_api.post("/api/generation/loras/", {"name": "Style", "file": "x"}, format="json")
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert "multipart/form-data" in error["message"]
    assert not Lora.objects.exists() and files_under(media_root) == []


def test_operation_ids_read_as_method_names_and_are_unique(api_client):
    ids = [operation["operationId"] for _, _, operation in _operations(_schema(api_client))]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    unreadable = [i for i in ids if not re.fullmatch(r"[a-z][a-z0-9_]*", i) or re.search(r"_\d+$", i)]
    assert unreadable == []


def test_every_error_response_is_the_envelope(api_client):
    schema = _schema(api_client)
    assert ENVELOPE_REF.rsplit("/", 1)[1] in schema["components"]["schemas"]
    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                body = response.get("content", {}).get("application/json", {}).get("schema")
                assert body == {"$ref": ENVELOPE_REF}, (method, path, status)


def test_error_statuses_are_declared_where_they_can_happen(api_client):
    missing = []
    for path, method, operation in _operations(_schema(api_client)):
        expected = {"401", "503", "4XX"}
        if "requestBody" in operation:
            expected |= {"400", "403", "413", "415"}
        if "{" in path:
            expected.add("404")
        if method != "get":
            expected.add("403")
        missing += [(method, path, status) for status in sorted(expected - set(operation["responses"]))]
    assert missing == []


@pytest.mark.parametrize(
    ("method", "path", "status", "present"),
    [
        ("get", "/api/jobs/thumbnails/", "403", True),  # admin only: a signed-in user is refused
        ("get", "/api/images/", "403", False),  # a public read
        ("get", "/api/images/", "404", True),  # a page past the end
        ("get", "/api/labels/stats/", "404", False),  # no id, no pages
        ("post", "/api/generation/jobs/{id}/cancel/", "409", True),  # a job in the wrong state
        ("post", "/api/generation/jobs/", "429", True),  # IMAGINEER_GENERATION_RATE
        ("post", "/api/images/", "429", True),  # IMAGINEER_UPLOAD_RATE
        ("post", "/api/albums/", "429", False),  # no rate limit
    ],
)
def test_error_statuses_follow_what_the_operation_is(api_client, method, path, status, present):
    operation = _schema(api_client)["paths"][path][method]
    assert (status in operation["responses"]) is present


def _enums(node, where="#"):
    if isinstance(node, dict):
        if "enum" in node:
            yield where, node
        for key, value in node.items():
            yield from _enums(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _enums(value, f"{where}/{index}")


def test_every_enum_is_a_named_component_once(api_client):
    schema = _schema(api_client)
    components = schema["components"]["schemas"]
    inline = [where for where, _ in _enums(schema) if not re.fullmatch(r"#/components/schemas/[A-Za-z]+", where)]
    assert inline == [], "anonymous enums: a generator makes a class for each"
    by_values = {}
    for name, component in components.items():
        if "enum" in component:
            by_values.setdefault(frozenset(component["enum"]), []).append(name)
    assert [names for names in by_values.values() if len(names) > 1] == []


def test_filter_parameters_use_the_named_enums(api_client):
    parameters = _schema(api_client)["paths"]["/api/generation/jobs/"]["get"]["parameters"]
    status = next(p for p in parameters if p["name"] == "status")
    assert status["schema"] == {"$ref": "#/components/schemas/JobStatusEnum"}


def _may_be_null(field: serializers.Field, serializer: serializers.Serializer) -> bool:
    if isinstance(field, serializers.SerializerMethodField):
        returns = typing.get_type_hints(getattr(serializer, field.method_name)).get("return")
        return type(None) in typing.get_args(returns) if isinstance(returns, types.UnionType) else False
    return bool(getattr(field, "allow_null", False))


def _is_nullable(schema: dict) -> bool:
    alternatives = schema.get("oneOf", []) + schema.get("anyOf", [])
    return schema.get("nullable") is True or {"$ref": "#/components/schemas/NullEnum"} in alternatives


def test_every_field_that_may_be_null_is_nullable_in_the_schema():
    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    not_nullable = []
    # The registry maps each component to the serializer it was made from (no public accessor).
    for component in generator.registry._components.values():
        serializer = component.object
        properties = schema["components"]["schemas"].get(component.name, {}).get("properties", {})
        if not isinstance(serializer, serializers.Serializer):
            continue
        for name, field in serializer.fields.items():
            if name in properties and _may_be_null(field, serializer) and not _is_nullable(properties[name]):
                not_nullable.append(f"{component.name}.{name}")
    assert not_nullable == []


def test_the_nullable_check_sees_known_nullable_fields():
    """The walk above finds serializers at all: a field every client must treat as optional-null."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    label = schema["components"]["schemas"]["Label"]["properties"]
    assert _is_nullable(label["created_by"])


@pytest.mark.parametrize(
    ("url", "headers", "status", "code", "fragment"),
    [
        ("/api/schema/?format=nonsense", {}, 406, "not_acceptable", "?format=yaml or json"),
        ("/api/schema/", {"HTTP_ACCEPT": "text/nonsense"}, 406, "not_acceptable", "application/vnd.oai.openapi"),
        ("/api/docs/?format=json", {}, 406, "not_acceptable", "?format=html"),
        ("/api/redoc/", {"HTTP_ACCEPT": "application/xml"}, 406, "not_acceptable", "text/html"),
        ("/api/images/?format=xml", {}, 406, "not_acceptable", "?format=json or api"),
        ("/api/no-such-route/", {}, 404, "not_found", "No API endpoint"),
    ],
)
def test_schema_and_docs_pages_answer_errors_in_the_envelope(api_client, url, headers, status, code, fragment):
    error = assert_envelope(api_client.get(url, **headers), status, code)
    assert fragment in error["message"]


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_schema_and_docs_pages_refuse_other_methods_in_the_envelope(api_client, url):
    assert_envelope(api_client.post(url, {}), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("url", "accept", "content_type"),
    [
        ("/api/schema/", "application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json"),
        ("/api/schema/?format=json", None, "application/vnd.oai.openapi+json"),
        ("/api/schema/", None, "application/vnd.oai.openapi"),
        ("/api/docs/", None, "text/html"),
        ("/api/redoc/", None, "text/html"),
    ],
)
def test_schema_and_docs_pages_still_answer(api_client, url, accept, content_type):
    response = api_client.get(url, **({"HTTP_ACCEPT": accept} if accept else {}))
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)


@pytest.mark.parametrize(
    ("path", "parses"),
    [
        ("/api/images/", ["multipart/form-data"]),
        ("/api/generation/loras/", ["multipart/form-data"]),
        ("/api/albums/", ["application/json"]),
        ("/api/generation/jobs/", ["application/json"]),
    ],
)
def test_options_names_the_content_type_the_routes_post_takes(path, parses, admin_client_api):
    response = admin_client_api.options(path)
    assert response.status_code == 200, response.content
    assert response.json()["parses"] == parses
