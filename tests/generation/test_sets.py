"""Set templates: the prompt rule, import in the earlier format, set runs."""

import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from albums.models import Album, AlbumSource
from generation import services
from generation.models import SetRun
from generation.sets import SetFormatError, import_sets, join_negative_prompts, parse_items_csv, render_set_prompt
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from tests.assertions import assert_envelope
from tests.factories import AlbumFactory

pytestmark = pytest.mark.django_db
SETS = Path(__file__).resolve().parents[1] / "data" / "sets"  # copy of ../shared/data/sets


@pytest.fixture
def sets_dir(tmp_path) -> Path:
    target = tmp_path / "sets"
    shutil.copytree(SETS, target)
    return target


def test_prompt_rule_card_deck_example():
    template = Album(
        base_prompt="Playing card portrait",
        prompt_template="{value} of {suit}, ornate playing card",
        style_suffix="vintage engraving",
    )
    row = {"value": "Ace", "suit": "Spades"}
    assert render_set_prompt(template, row, "steampunk") == (
        "Playing card portrait. Art style: steampunk. Ace of Spades, ornate playing card. vintage engraving"
    )


def test_prompt_rule_keeps_unknown_placeholders_and_skips_empty_parts():
    template = Album(base_prompt="", prompt_template="{sign} under {moon}", style_suffix="")
    assert render_set_prompt(template, {"sign": "Leo"}, "") == "Leo under {moon}"
    assert join_negative_prompts("fog", "blurry, low quality") == "fog, blurry, low quality"
    assert join_negative_prompts("", "blurry") == "blurry"


def test_import_sets_is_idempotent(sets_dir, capsys):
    call_command("import_sets", str(sets_dir))
    first = capsys.readouterr().out
    assert "3 created" in first
    zodiac = Album.objects.get(slug="set-zodiac")
    assert zodiac.is_set_template and len(zodiac.template_items) == 12
    assert zodiac.template_items[0] == {"sign": "Aries"} and (zodiac.width, zodiac.height) == (512, 768)
    assert len(Album.objects.get(slug="set-card-deck").template_items) == 52
    call_command("import_sets", str(sets_dir))
    assert "0 created, 0 updated, 3 unchanged" in capsys.readouterr().out
    assert Album.objects.filter(is_set_template=True).count() == 3


def test_import_sets_reports_changes(sets_dir):
    import_sets(sets_dir / "config.yaml")
    (sets_dir / "zodiac.csv").write_text("sign\nAries\nTaurus\n")
    report = import_sets(sets_dir / "config.yaml")
    assert report.updated == ["zodiac"] and sorted(report.unchanged) == ["card_deck", "tarot_deck"]
    assert len(Album.objects.get(slug="set-zodiac").template_items) == 2


def test_malformed_csv_is_reported_with_file_and_line_and_imports_nothing_of_that_set(sets_dir):
    (sets_dir / "tarot_deck.csv").write_text("card\nThe Fool\nThe Magician,extra\n")
    report = import_sets(sets_dir / "config.yaml")
    assert report.errors == ["set 'tarot_deck': tarot_deck.csv, line 3: expected 1 columns, found 2."]
    assert sorted(report.created) == ["card_deck", "zodiac"]
    assert not Album.objects.filter(slug="set-tarot-deck").exists()


def test_malformed_yaml_is_reported_with_line(sets_dir):
    (sets_dir / "config.yaml").write_text("zodiac:\n  name: Z\n  prompt_template: [unclosed\n")
    report = import_sets(sets_dir / "config.yaml")
    assert len(report.errors) == 1 and "config.yaml, line" in report.errors[0]
    assert Album.objects.count() == 0


def test_parse_items_csv_errors():
    with pytest.raises(SetFormatError, match="line 1"):
        parse_items_csv("a,a\n1,2\n")
    with pytest.raises(SetFormatError, match="no rows"):
        parse_items_csv("a,b\n")


def test_set_templates_filter_and_preview(sets_dir, api_client):
    import_sets(sets_dir / "config.yaml")
    AlbumFactory(name="Outputs")
    templates = api_client.get("/api/albums/?is_set_template=true").json()["results"]
    assert {a["slug"] for a in templates} == {"set-card-deck", "set-zodiac", "set-tarot-deck"}
    outputs = api_client.get("/api/albums/?is_set_template=false").json()["results"]
    assert [a["name"] for a in outputs] == ["Outputs"]
    zodiac = next(a for a in templates if a["slug"] == "set-zodiac")
    assert zodiac["template_items_preview"][0] == (
        "Illustration of the zodiac sign. Art style: Night Sky. Aries zodiac symbol. celestial art"
    )


def test_set_run_over_12_zodiac_rows(sets_dir, tiny_model, admin_client_api):
    import_sets(sets_dir / "config.yaml")
    template = Album.objects.get(slug="set-zodiac")
    response = admin_client_api.post(
        f"/api/albums/{template.pk}/generate/",
        {
            "theme": "steampunk",
            "steps": 2,
            "width": 64,
            "height": 64,
            "seed": 100,
            "negative_prompt": "fog",
            "batch_size": 4,
        },
    )
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    jobs.run_job(SetRun, run_id, services.run_set_run)
    run = SetRun.objects.get(pk=run_id)
    assert run.status == JobStatus.SUCCEEDED, run.error_message
    assert (run.total_items, run.completed_items, run.failed_items) == (12, 12, 0)
    album = run.output_album
    assert album.source_type == AlbumSource.BATCH_GENERATION and album.source_id == run.pk
    assert not album.is_set_template and template.album_images.count() == 0
    images = [link.image for link in album.album_images.select_related("image").order_by("sort_order")]
    signs = [row["sign"] for row in template.template_items]
    assert [i.prompt for i in images] == [
        f"Illustration of the zodiac sign. Art style: steampunk. {sign} zodiac symbol. celestial art" for sign in signs
    ]
    assert {i.negative_prompt for i in images} == {"fog, blurry, low quality"}
    assert [i.seed for i in images] == list(range(100, 112))
    status = admin_client_api.get(f"/api/generation/set-runs/{run_id}/").json()
    assert status["status"] == "succeeded" and status["completed_items"] == 12 and status["progress"] == 1.0


def test_set_run_where_every_row_fails_ends_failed(sets_dir, tiny_model, tiny_lora, admin_user):
    import_sets(sets_dir / "config.yaml")
    template = Album.objects.get(slug="set-zodiac")
    lora = tiny_lora("broken", seed=4)
    template.loras = [{"lora": lora.slug, "weight": 0.5}]
    template.save()
    with lora.file.open("wb") as handle:
        handle.write(b"garbage")
    run = services.start_set_run(
        template, user=admin_user, theme="t", overrides={"steps": 2, "width": 64, "height": 64}
    )
    jobs.run_job(SetRun, run.pk, services.run_set_run)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.failed_items == 12 and run.completed_items == 0
    assert "All 12 rows failed" in run.error_message and run.failures[0]["item"] == "Aries"


def test_generate_needs_a_set_template_and_admin(tiny_model, admin_client_api, user_client_api):
    plain = AlbumFactory()
    assert_envelope(
        admin_client_api.post(f"/api/albums/{plain.pk}/generate/", {"theme": "x"}), 400, "not_a_set_template"
    )
    template = AlbumFactory(is_set_template=True, template_items=[{"a": "1"}], prompt_template="{a}")
    assert_envelope(user_client_api.post(f"/api/albums/{template.pk}/generate/", {"theme": "x"}), 403)
    assert_envelope(admin_client_api.post(f"/api/albums/{template.pk}/generate/", {}), 400, "validation_error")
    assert_envelope(admin_client_api.post(f"/api/albums/{template.pk}/generate/", {"theme": "x", "steps": 999}), 400)
    assert SetRun.objects.count() == 0


def test_templates_never_collect_images(admin_client_api):
    from tests.factories import make_image

    template = AlbumFactory(is_set_template=True)
    image = make_image()
    assert_envelope(
        admin_client_api.post(f"/api/albums/{template.pk}/images/", {"image_ids": [image.pk]}), 400, "album_is_template"
    )


def test_queued_set_run_can_be_cancelled(sets_dir, tiny_model, admin_client_api):
    import_sets(sets_dir / "config.yaml")
    template = Album.objects.get(slug="set-tarot-deck")
    run = admin_client_api.post(
        f"/api/albums/{template.pk}/generate/", {"theme": "x", "width": 64, "height": 64}
    ).json()
    cancelled = admin_client_api.post(f"/api/generation/set-runs/{run['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert jobs.claim_job(SetRun, run["id"]) is None


def test_set_run_checks_the_templates_own_size(tiny_model, admin_client_api):
    template = AlbumFactory(
        is_set_template=True, template_items=[{"a": "1"}], prompt_template="{a}", width=100, height=5000
    )
    error = assert_envelope(admin_client_api.post(f"/api/albums/{template.pk}/generate/", {"theme": "x"}), 400)
    assert {"width", "height"} <= set(error["details"]["fields"])
    ok = admin_client_api.post(f"/api/albums/{template.pk}/generate/", {"theme": "x", "width": 64, "height": 64})
    assert ok.status_code == 202
    assert SetRun.objects.count() == 1


def test_retry_starts_counters_afresh(tiny_model, admin_user):
    template = AlbumFactory(is_set_template=True, template_items=[{"a": "1"}], prompt_template="{a}")
    run = SetRun.objects.create(
        template=template,
        album_name="x",
        theme="t",
        model=tiny_model,
        status=JobStatus.FAILED,
        completed_items=1,
        failed_items=1,
        failures=[{"row": 1}],
        total_items=2,
    )
    jobs.retry_job(run)
    run.refresh_from_db()
    assert (run.status, run.completed_items, run.failed_items, run.failures) == (JobStatus.QUEUED, 0, 0, [])
