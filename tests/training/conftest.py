import pytest
import yaml
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import Label, LabelSource, LabelType
from tests.factories import AlbumFactory, make_image
from tests.generation.conftest import tiny_model  # noqa: F401 - the tiny model fixture, shared


def write_training_config(path, **training) -> None:
    """Set runtime config `training` keys for this test (and for a worker started by it)."""
    path.write_text(yaml.safe_dump({"training": training}), encoding="utf-8")


@pytest.fixture
def training_config(runtime_config_file):
    def write(**training):
        write_training_config(runtime_config_file, **training)

    return write


@pytest.fixture
def captioned_album(db):
    """An album of `captioned` images with machine captions and `uncaptioned` images without."""

    def make(captioned: int, uncaptioned: int = 0, *, name: str = "Dataset", manual_on: int | None = None):
        album = AlbumFactory(name=name)
        for number in range(captioned):
            image = make_image(album=album)
            Label.objects.create(
                image=image, text=f"a machine caption {number}", label_type=LabelType.CAPTION, source=LabelSource.CLAUDE
            )
            if manual_on is not None and number == manual_on:
                Label.objects.create(
                    image=image, text="a person's caption", label_type=LabelType.CAPTION, source=LabelSource.MANUAL
                )
        for _ in range(uncaptioned):
            image = make_image(album=album)
            Label.objects.create(image=image, text="a tag", label_type=LabelType.TAG, source=LabelSource.CLAUDE)
        return album

    return make


@pytest.fixture
def admin_api(admin_user):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    return api


# Parameters that make a run of the tiny model short and its LoRA strong enough to change output.
QUICK = {"steps": 3, "rank": 4, "alpha": 4, "learning_rate": 0.05, "resolution": 64, "seed": 7}
