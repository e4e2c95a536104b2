"""Fixtures of the training suites: the runtime config's `training` keys and an admin's API client."""

import pytest
import yaml
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def write_training_config(path, **training) -> None:
    """Set runtime config `training` keys for this test (and for a worker started by it)."""
    path.write_text(yaml.safe_dump({"training": training}), encoding="utf-8")


@pytest.fixture
def training_config(runtime_config_file):
    def write(**training):
        write_training_config(runtime_config_file, **training)

    return write


@pytest.fixture
def admin_api(admin_user):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    return api
