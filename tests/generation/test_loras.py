"""The LoRA registry: header checks, import of the earlier folder layout, upload API."""

import json

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from safetensors.torch import save_file

from generation.lora_import import import_lora_folder, trigger_phrase
from generation.models import Lora, LoraProvenance
from generation.pipeline.loras import NotALora, inspect_lora
from tests.assertions import assert_envelope, files_under
from tests.generation.lora_files import kohya_lora

pytestmark = pytest.mark.django_db


def test_inspect_tells_family_from_shapes(tmp_path):
    assert inspect_lora(kohya_lora(tmp_path / "a.safetensors", cross_dim=768)).family == "sd1"
    assert inspect_lora(kohya_lora(tmp_path / "b.safetensors", cross_dim=1024)).family == "sd2"
    sdxl = kohya_lora(
        tmp_path / "c.safetensors", cross_dim=2048, prefix="lora_unet_input_blocks_4_1_transformer_blocks_0"
    )
    assert inspect_lora(sdxl).family == "sdxl"
    info = inspect_lora(kohya_lora(tmp_path / "d.safetensors", cross_dim=768, rank=8))
    assert (info.key_format, info.rank) == ("kohya", 8)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("model.ckpt", b"\x80\x04pickle", "only .safetensors"),
        ("fake.safetensors", b"\x80\x04 definitely a pickle", "not a readable safetensors"),
    ],
)
def test_inspect_refuses_pickles_and_garbage(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NotALora, match=reason):
        inspect_lora(path)


def test_inspect_refuses_non_lora_tensors(tmp_path):
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(NotALora, match="no LoRA weights"):
        inspect_lora(tmp_path / "plain.safetensors")
    save_file({"lora_unet_x.hada_w1_a": torch.zeros(2, 2)}, str(tmp_path / "loha.safetensors"))
    with pytest.raises(NotALora, match="LyCORIS"):
        inspect_lora(tmp_path / "loha.safetensors")


def test_trigger_phrase_rule():
    assert trigger_phrase("Card_Fronts-000008.safetensors") == "card fronts"
    assert trigger_phrase("CelestialTarot_V2.safetensors") == "celestial tarot"
    assert trigger_phrase("Tarot.safetensors") == "tarot"


@pytest.fixture
def legacy_lora_dir(tmp_path):
    root = tmp_path / "lora"
    kohya_lora(root / "card_fronts" / "Card_Fronts-000008.safetensors")
    (root / "card_fronts" / "config.yaml").write_text("name: Card Fronts\ndefault_weight: 0.8\n")
    kohya_lora(root / "sdxl_thing" / "Thing.safetensors", cross_dim=2048)
    (root / "odd").mkdir()
    save_file({"lora_unet_x.lokr_w1": torch.zeros(2, 2)}, str(root / "odd" / "Odd.safetensors"))
    (root / "pickled").mkdir()
    (root / "pickled" / "old.ckpt").write_bytes(b"\x80\x04")
    (root / "_incompatible").mkdir()
    kohya_lora(root / "_incompatible" / "rejected.safetensors")
    (root / "index.json").write_text(
        json.dumps({"thing": {"filename": "Thing.safetensors", "friendly_name": "Big Thing", "default_weight": 0.3}})
    )
    return root


def test_import_loras_imports_reports_and_is_idempotent(legacy_lora_dir, capsys):
    call_command("import_loras", str(legacy_lora_dir))
    out = capsys.readouterr().out
    assert "2 imported, 0 already present, 2 skipped" in out
    assert "odd/Odd.safetensors: " in out and "LoKr" in out and "pickled/old.ckpt" in out
    cards = Lora.objects.get(name="Card Fronts")
    assert (cards.family, cards.default_weight, cards.trigger_words, cards.provenance) == (
        "sd1",
        0.8,
        "card fronts",
        LoraProvenance.IMPORTED,
    )
    thing = Lora.objects.get(name="Big Thing")
    assert (thing.family, thing.default_weight) == ("sdxl", 0.3)
    report = import_lora_folder(legacy_lora_dir)
    assert (len(report.imported), len(report.already_present)) == (0, 2)
    assert Lora.objects.count() == 2


def test_upload_lora_api(tmp_path, admin_client_api, user_client_api, media_root):
    data = kohya_lora(tmp_path / "x.safetensors").read_bytes()
    response = admin_client_api.post(
        "/api/generation/loras/",
        {"file": SimpleUploadedFile("my style.safetensors", data), "name": "My Style", "trigger_words": "mystyle, ink"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["slug"], body["family"], body["trigger_words"]) == ("my-style", "sd1", ["mystyle", "ink"])
    assert "file" not in body and str(media_root) not in response.content.decode()
    listed = user_client_api.get("/api/generation/loras/").json()["results"]
    assert [item["slug"] for item in listed] == ["my-style"]
    assert_envelope(user_client_api.post("/api/generation/loras/", {"name": "x"}, format="multipart"), 403)


@pytest.mark.parametrize(
    ("filename", "content_factory", "fragment"),
    [
        ("evil.ckpt", lambda tmp: b"\x80\x04\x95", "only .safetensors"),
        ("fake.safetensors", lambda tmp: b"garbage", "not a readable safetensors"),
        ("plain.safetensors", lambda tmp: _plain_tensors(tmp), "no LoRA weights"),
    ],
)
def test_upload_refuses_non_loras_and_stores_nothing(
    tmp_path, admin_client_api, media_root, filename, content_factory, fragment
):
    response = admin_client_api.post(
        "/api/generation/loras/",
        {"file": SimpleUploadedFile(filename, content_factory(tmp_path)), "name": "Bad"},
        format="multipart",
    )
    error = assert_envelope(response, 400, "invalid_lora")
    assert fragment in error["message"]
    assert Lora.objects.count() == 0 and files_under(media_root) == []


def test_upload_with_family_contradicting_weights_is_refused(tmp_path, admin_client_api):
    data = kohya_lora(tmp_path / "x.safetensors").read_bytes()
    response = admin_client_api.post(
        "/api/generation/loras/",
        {"file": SimpleUploadedFile("x.safetensors", data), "name": "X", "family": "sdxl"},
        format="multipart",
    )
    assert "not sdxl" in assert_envelope(response, 400, "invalid_lora")["message"]


def _plain_tensors(tmp_path) -> bytes:
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "p.safetensors"))
    return (tmp_path / "p.safetensors").read_bytes()
