"""Media in an S3-compatible bucket (a real moto server on 127.0.0.1), in this process.

Chosen from the environment as a deployment chooses it; every part that writes, reads or deletes
media goes through the bucket and leaves nothing under the local media root.
"""

import io
import subprocess
import sys

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile

from albums import services as albums_services
from albums.models import Image
from generation.models import DiffusionModel, Lora, ModelSource
from generation.pipeline.runner import lora_local_path
from imagineer.core.logging import scrub_text
from imagineer.core.storage import S3_BACKEND, media_storage
from legacy.models import ImportMode
from legacy.stager import MediaNotWritable, check_media_writable
from tests.assertions import files_under
from tests.deploy.s3_bucket import SECRET_ACCESS_KEY
from tests.factories import image_bytes
from tests.processes import ROOT, base_env
from training import logs
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def _storage_for(monkeypatch, **variables: str) -> dict:
    for name in ("IMAGINEER_STORAGE", "AWS_STORAGE_BUCKET_NAME", "AWS_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return media_storage(environ.Env())


def test_local_folder_is_the_default_and_s3_is_chosen_by_environment(monkeypatch):
    assert _storage_for(monkeypatch) == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    chosen = _storage_for(
        monkeypatch,
        IMAGINEER_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="media",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9000",
    )
    assert chosen["BACKEND"] == S3_BACKEND
    options = chosen["OPTIONS"]
    assert (options["bucket_name"], options["endpoint_url"]) == ("media", "http://127.0.0.1:9000")
    assert options["file_overwrite"] is False and options["querystring_auth"] is True
    assert options["max_memory_size"] > 0  # large objects spill to disk instead of filling memory
    assert not any("secret" in key or "access_key" in key for key in options)  # boto3 finds credentials


@pytest.mark.parametrize(
    ("variables", "message"),
    [({"IMAGINEER_STORAGE": "nfs"}, "use 'local'"), ({"IMAGINEER_STORAGE": "s3"}, "AWS_STORAGE_BUCKET_NAME")],
)
def test_an_unusable_storage_setting_is_refused_saying_what_to_set(monkeypatch, variables, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        _storage_for(monkeypatch, **variables)


def test_settings_module_wires_the_bucket_from_the_environment(s3_bucket, settings):
    """A process started with only these variables (settings.py, not this test's override) writes to the bucket."""
    probe = (
        "import django; django.setup(); from django.core.files.base import ContentFile; "
        "from django.core.files.storage import storages; s = storages['default']; "
        "print(type(s).__module__ + '.' + type(s).__name__, s.save('probe/written.txt', ContentFile(b'ok')))"
    )
    env = base_env(IMAGINEER_DATA_DIR=str(settings.DATA_DIR), **s3_bucket.env)
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    backend, name = done.stdout.split()[-2:]
    assert backend == S3_BACKEND
    assert s3_bucket.keys() == {name} and s3_bucket.read(name) == b"ok"


def test_uploaded_image_lives_in_the_bucket_and_streams_from_it(s3_media, admin_client_api, media_root):
    data = image_bytes("PNG", size=(300, 200))
    response = admin_client_api.post(
        "/api/images/", {"file": SimpleUploadedFile("a.png", data, content_type="image/png")}, format="multipart"
    )
    assert response.status_code == 201, response.content
    image = Image.objects.get(pk=response.json()["id"])
    assert s3_media.keys() == {image.file.name, image.thumbnail.name}
    assert s3_media.read(image.file.name) == data
    assert files_under(media_root) == []

    served = admin_client_api.get(f"/api/images/{image.pk}/file/")
    assert served.status_code == 200 and b"".join(served.streaming_content) == data
    thumbnail = admin_client_api.get(f"/api/images/{image.pk}/thumbnail/")
    assert b"".join(thumbnail.streaming_content) == s3_media.read(image.thumbnail.name)


def test_rebuilt_thumbnail_replaces_the_old_object_and_delete_removes_both(
    s3_media, admin_client_api, django_capture_on_commit_callbacks
):
    image, _ = albums_services.store_image(io.BytesIO(image_bytes()), original_filename="b.png")
    old = image.thumbnail.name
    albums_services.build_thumbnail(image)
    assert s3_media.keys() == {image.file.name, image.thumbnail.name} and old not in s3_media.keys()
    with django_capture_on_commit_callbacks(execute=True):  # files go once the row's deletion commits
        assert admin_client_api.delete(f"/api/images/{image.pk}/").status_code == 204
    assert s3_media.keys() == set()


def test_a_lora_copy_cut_short_is_copied_again(s3_media, settings, tmp_path):
    """A worker killed while copying a LoRA from the bucket must not leave a file later jobs load."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    settings.IMAGINEER_SCRATCH_DIR = tmp_path / "scratch"
    weights = bytes(range(256)) * 64
    name = default_storage.save("loras/remote.safetensors", ContentFile(weights))
    lora = Lora.objects.create(
        name="remote", slug="remote", file=name, sha256="e" * 64, family="sd1", file_size=len(weights)
    )
    cut_short = tmp_path / "scratch" / "loras" / f"{lora.sha256}.safetensors"
    cut_short.parent.mkdir(parents=True)
    cut_short.write_bytes(weights[:1000])  # what a copy interrupted after 1000 bytes leaves

    path = lora_local_path(lora)
    with open(path, "rb") as copy:
        assert copy.read() == weights
    assert sorted(p.name for p in cut_short.parent.iterdir()) == [cut_short.name]  # no partial left


def test_training_log_is_stored_in_the_bucket_and_keeps_earlier_attempts(s3_media, tmp_path, media_root):
    model = DiffusionModel.objects.create(name="m", source_type=ModelSource.DIFFUSERS_DIR, source="x")
    run = TrainingRun.objects.create(name="r", model=model, log_file="")
    for attempt in (1, 2):
        writer = logs.LogWriter(run, tmp_path / f"attempt-{attempt}")
        writer.write(f"attempt {attempt} wrote from {tmp_path}")
        writer.close()
    run.log_file.name = logs.log_name(run)
    assert s3_media.keys() == {logs.log_name(run)}
    assert logs.read_log(run, 0).lines == ["attempt 1 wrote from <path>", "attempt 2 wrote from <path>"]
    assert files_under(media_root) == []


def test_legacy_symlink_import_is_refused_on_a_bucket_and_copy_is_allowed(s3_media):
    with pytest.raises(MediaNotWritable, match="--mode copy"):
        check_media_writable(ImportMode.SYMLINK)
    check_media_writable(ImportMode.COPY)
    assert s3_media.keys() == set()  # the write probe cleaned up after itself


def test_readiness_checks_the_bucket_and_names_it_when_it_is_gone(s3_media, client):
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["media"] == "ok"
    assert s3_media.keys() == set()  # the probe object was removed
    s3_media.client().delete_bucket(Bucket=s3_media.name)
    gone = client.get("/readyz")
    assert gone.status_code == 503 and gone.json()["error"]["details"]["checks"]["media"] == "unavailable"


def test_the_secret_access_key_never_reaches_a_log_line(settings):
    settings.AWS_SECRET_ACCESS_KEY = SECRET_ACCESS_KEY
    line = scrub_text(f"S3 said: signature mismatch for key {SECRET_ACCESS_KEY}")
    assert SECRET_ACCESS_KEY not in line and "[REDACTED]" in line
