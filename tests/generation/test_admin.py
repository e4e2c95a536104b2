"""The generation console: model, LoRA, job and set-run admin, set templates edited as CSV."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from albums.models import AlbumType
from generation import registry, services
from generation.models import DiffusionModel, GenerationJob, Lora, LoraProvenance, ModelSource, SetRun
from generation.sets import items_to_csv, render_set_prompt
from imagineer.core.models import JobStatus
from tests.assertions import files_under
from tests.factories import AlbumFactory, make_image
from tests.generation.lora_files import kohya_lora

pytestmark = pytest.mark.django_db

TAROT_NAMES = ["The Fool", "The Magician", "The High Priestess", "The Empress", "The Emperor", "The Hierophant"]
TAROT_ROWS = [{"name": name, "number": str(number)} for number, name in enumerate(TAROT_NAMES)]


@pytest.fixture
def tarot_template(db):
    return AlbumFactory(
        name="Tarot",
        is_set_template=True,
        album_type=AlbumType.SET,
        base_prompt="A tarot card",
        prompt_template="{name}, number {number}",
        style_suffix="highly detailed",
        example_theme="art nouveau",
        template_items=TAROT_ROWS,
    )


def album_form_data(album, **changes) -> dict:
    """The album change form's POST data for `album` as it is, with `changes` applied."""
    text_fields = [
        "name",
        "slug",
        "description",
        "album_type",
        "source_type",
        "base_prompt",
        "prompt_template",
        "style_suffix",
        "example_theme",
        "negative_prompt",
    ]
    data = {name: getattr(album, name) for name in text_fields}
    data.update(
        source_id=album.source_id or "",
        width=album.width or "",
        height=album.height or "",
        default_model=album.default_model_id or "",
        loras=json.dumps(album.loras),
        items_csv=items_to_csv(album.template_items),
    )
    data.update({f"album_images-{name}": "0" for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS")})
    data.update({flag: "on" for flag in ("is_public", "is_set_template") if getattr(album, flag)})
    data.update(changes)
    return data


# --- Lists -------------------------------------------------------------------------------------


def test_changelists_load_and_show_no_paths(admin_browser, tiny_model, tiny_lora, media_root, settings, admin_user):
    lora = tiny_lora("Card Fronts", seed=1)
    job = services.start_generation_job(user=admin_user, model=tiny_model, prompt="a red fox " * 20)
    image = make_image()
    job.images.add(image)
    template = AlbumFactory(is_set_template=True, template_items=[{"name": "Aries"}])
    run = services.start_set_run(template, user=admin_user, theme="art deco")
    output = AlbumFactory(name="Zodiac output")
    SetRun.objects.filter(pk=run.pk).update(output_album=output)

    pages = {}
    for url in [
        "/admin/generation/diffusionmodel/",
        "/admin/generation/lora/",
        "/admin/generation/generationjob/",
        "/admin/generation/setrun/",
        f"/admin/generation/lora/{lora.pk}/change/",
        f"/admin/generation/generationjob/{job.pk}/change/",
        f"/admin/generation/setrun/{run.pk}/change/",
        "/admin/generation/generationjob/add/",
        "/admin/generation/lora/add/",
    ]:
        response = admin_browser.get(url)
        assert response.status_code == 200, url
        pages[url] = html = response.content.decode()
        assert str(media_root) not in html and str(settings.DATA_DIR) not in html, url
        assert lora.file.name not in html and image.file.name not in html, url
    assert tiny_model.source not in pages["/admin/generation/diffusionmodel/"]
    assert "Card Fronts" in pages["/admin/generation/lora/"]
    jobs_html = pages["/admin/generation/generationjob/"]
    assert f"/api/images/{image.pk}/thumbnail" in jobs_html  # the first result's thumbnail
    assert "a red fox " * 5 in jobs_html and "a red fox " * 20 not in jobs_html  # the prompt is cut short
    runs_html = pages["/admin/generation/setrun/"]
    assert "art deco" in runs_html and "0/1" in runs_html
    assert f"/admin/albums/album/{output.pk}/change/" in runs_html


def test_make_default_action_moves_the_default(admin_browser, tiny_model):
    other = DiffusionModel.objects.create(name="other", source_type=ModelSource.HUB, source="org/other")
    admin_browser.post("/admin/generation/diffusionmodel/", {"action": "make_default", "_selected_action": [other.pk]})
    assert list(DiffusionModel.objects.filter(is_default=True)) == [other]


# --- LoRAs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("fake.safetensors", b"\x80\x04 definitely a pickle", "fake.safetensors: not a readable safetensors file"),
        ("model.ckpt", b"\x80\x04pickle", "model.ckpt: only .safetensors LoRA files are accepted"),
    ],
)
def test_lora_add_form_refuses_non_loras(admin_browser, media_root, name, content, reason):
    response = admin_browser.post(
        "/admin/generation/lora/add/",
        {"file": SimpleUploadedFile(name, content), "name": "Bad", "family": "", "default_weight": "0.6"},
    )
    assert response.status_code == 200
    assert reason in response.content.decode()
    assert Lora.objects.count() == 0
    assert files_under(media_root) == []


def test_lora_add_form_registers_a_lora(admin_browser, admin_user, tmp_path, media_root):
    upload = kohya_lora(tmp_path / "x.safetensors").read_bytes()
    data = {"name": "Card Fronts", "family": "", "trigger_words": "card fronts", "default_weight": "0.8"}
    response = admin_browser.post(
        "/admin/generation/lora/add/", {**data, "file": SimpleUploadedFile("Card_Fronts.safetensors", upload)}
    )
    assert response.status_code == 302
    lora = Lora.objects.get()
    assert (lora.name, lora.family, lora.trigger_words, lora.default_weight) == (
        "Card Fronts",
        "sd1",
        "card fronts",
        0.8,
    )
    assert (lora.provenance, lora.created_by, lora.file_size) == (LoraProvenance.UPLOADED, admin_user, len(upload))
    assert files_under(media_root) == [lora.file.name]

    again = admin_browser.post(
        "/admin/generation/lora/add/", {**data, "file": SimpleUploadedFile("copy.safetensors", upload)}
    )
    assert "already registered, as the LoRA" in again.content.decode()
    assert Lora.objects.count() == 1


def test_lora_change_form_edits_fields_but_not_the_file(admin_browser, tmp_path):
    lora, _ = registry.register_lora(kohya_lora(tmp_path / "x.safetensors"), name="Old name")
    stored = lora.file.name
    html = admin_browser.get(f"/admin/generation/lora/{lora.pk}/change/").content.decode()
    assert 'value="Old name"' in html  # the change form, with the fields an admin may edit ...
    assert 'type="file"' not in html and stored not in html  # ... and neither a file input nor the stored name
    response = admin_browser.post(
        f"/admin/generation/lora/{lora.pk}/change/",
        {"name": "New name", "trigger_words": "tarot", "default_weight": "1.1", "description": "", "enabled": "on"},
    )
    assert response.status_code == 302
    lora.refresh_from_db()
    assert (lora.name, lora.trigger_words, lora.default_weight, lora.file.name) == ("New name", "tarot", 1.1, stored)


def test_lora_delete_removes_its_file(admin_browser, tmp_path, media_root, django_capture_on_commit_callbacks):
    lora, _ = registry.register_lora(kohya_lora(tmp_path / "x.safetensors"), name="Doomed")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_browser.post(f"/admin/generation/lora/{lora.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert Lora.objects.count() == 0 and files_under(media_root) == []


# --- Generation jobs ---------------------------------------------------------------------------


def job_form_data(model, **changes) -> dict:
    data = {
        "prompt": "a red fox",
        "negative_prompt": "",
        "model": model.pk,
        "scheduler": "",
        "steps": "",
        "guidance_scale": "",
        "width": "",
        "height": "",
        "seed": "",
        "count": "1",
        "album": "",
    }
    return {**data, **changes}


def test_job_add_form_starts_a_queued_job(admin_browser, admin_user, tiny_model, tiny_lora):
    lora = tiny_lora("Style", seed=1)
    album = AlbumFactory()
    data = job_form_data(
        tiny_model,
        negative_prompt="blurry",
        scheduler="euler_a",
        steps="4",
        guidance_scale="5.5",
        width="64",
        height="96",
        seed="0",
        count="2",
        loras=[lora.pk],
        album=album.pk,
    )
    response = admin_browser.post("/admin/generation/generationjob/add/", data)
    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert response["Location"].endswith("/admin/generation/generationjob/")
    assert (job.status, job.created_by, job.model, job.album) == (JobStatus.QUEUED, admin_user, tiny_model, album)
    parameters = (job.prompt, job.negative_prompt, job.scheduler, job.steps, job.guidance_scale, job.width, job.height)
    assert parameters == ("a red fox", "blurry", "euler_a", 4, 5.5, 64, 96)
    assert (job.seed, job.count) == (0, 2)  # seed 0 is a seed, not "random"
    assert job.loras == [{"lora": lora.pk, "name": lora.slug, "weight": lora.default_weight}]


def test_job_add_form_takes_model_defaults_for_empty_fields(admin_browser, tiny_model):
    assert admin_browser.post("/admin/generation/generationjob/add/", job_form_data(tiny_model)).status_code == 302
    job = GenerationJob.objects.get()
    defaults = registry.model_defaults(tiny_model)
    assert (job.steps, job.width, job.height, job.scheduler) == (
        defaults["steps"],
        defaults["width"],
        defaults["height"],
        defaults["scheduler"],
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", "0", "greater than or equal to 1"),
        ("width", "70", "Must be a multiple of 8."),
        ("height", "4096", "Must be between 64 and 2048"),
        ("count", "9", "less than or equal to 8"),
    ],
)
def test_job_add_form_refuses_out_of_limit_parameters(admin_browser, tiny_model, field, value, message):
    response = admin_browser.post("/admin/generation/generationjob/add/", job_form_data(tiny_model, **{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert GenerationJob.objects.count() == 0


def test_rerun_action_queues_a_job_with_the_same_parameters(admin_browser, admin_user, tiny_model, tiny_lora):
    lora = tiny_lora("Style", seed=1)
    first = services.start_generation_job(
        user=admin_user,
        model=tiny_model,
        prompt="a fox",
        negative_prompt="blurry",
        scheduler="ddim",
        steps=3,
        guidance_scale=4.0,
        width=64,
        height=64,
        seed=1234,
        count=2,
        loras=[(lora, 0.4)],
    )
    response = admin_browser.post(
        "/admin/generation/generationjob/", {"action": "rerun_jobs", "_selected_action": [first.pk]}, follow=True
    )
    assert response.status_code == 200
    second = GenerationJob.objects.exclude(pk=first.pk).get()
    assert f"Queued 1 new job(s): #{second.pk}." in response.content.decode()
    fields = [
        "prompt",
        "negative_prompt",
        "model",
        "scheduler",
        "steps",
        "guidance_scale",
        "width",
        "height",
        "seed",
        "count",
        "loras",
        "album",
    ]
    assert {f: getattr(second, f) for f in fields} == {f: getattr(first, f) for f in fields}
    assert second.status == JobStatus.QUEUED


# --- Set templates -----------------------------------------------------------------------------


def test_album_items_are_edited_as_csv(admin_browser, tarot_template):
    url = f"/admin/albums/album/{tarot_template.pk}/change/"
    assert "The High Priestess" in admin_browser.get(url).content.decode()
    response = admin_browser.post(
        url, album_form_data(tarot_template, items_csv='name,number\r\nThe Star,17\r\n"Wheel, of Fortune",10\r\n')
    )
    assert response.status_code == 302
    tarot_template.refresh_from_db()
    assert tarot_template.template_items == [
        {"name": "The Star", "number": "17"},
        {"name": "Wheel, of Fortune", "number": "10"},
    ]


def test_album_malformed_csv_is_a_form_error_naming_the_line(admin_browser, tarot_template):
    url = f"/admin/albums/album/{tarot_template.pk}/change/"
    response = admin_browser.post(url, album_form_data(tarot_template, items_csv="name,number\nThe Star,17,extra\n"))
    assert response.status_code == 200
    assert "CSV, line 2: expected 2 columns, found 3." in response.content.decode()
    tarot_template.refresh_from_db()
    assert tarot_template.template_items == TAROT_ROWS


def test_album_untouched_csv_keeps_the_rows(admin_browser, tarot_template):
    url = f"/admin/albums/album/{tarot_template.pk}/change/"
    assert admin_browser.post(url, album_form_data(tarot_template, description="Major arcana")).status_code == 302
    tarot_template.refresh_from_db()
    assert (tarot_template.description, tarot_template.template_items) == ("Major arcana", TAROT_ROWS)


def test_album_change_page_previews_prompts_and_links_to_generate(admin_browser, tarot_template):
    html = admin_browser.get(f"/admin/albums/album/{tarot_template.pk}/change/").content.decode()
    assert "A tarot card. Art style: art nouveau. The Fool, number 0. highly detailed" in html
    assert render_set_prompt(tarot_template, TAROT_ROWS[4], "art nouveau") in html
    assert render_set_prompt(tarot_template, TAROT_ROWS[5], "art nouveau") not in html  # five rows only
    assert f"/admin/albums/album/{tarot_template.pk}/generate/" in html

    plain = AlbumFactory()
    response = admin_browser.get(f"/admin/albums/album/{plain.pk}/change/")
    assert response.status_code == 200 and plain.name in response.content.decode()
    assert f"/admin/albums/album/{plain.pk}/generate/" not in response.content.decode()


def test_album_changelist_filters_set_templates(admin_browser, tarot_template):
    AlbumFactory(name="Holiday photos")
    html = admin_browser.get("/admin/albums/album/?is_set_template__exact=1").content.decode()
    assert "Tarot" in html and "Holiday photos" not in html


def test_generate_view_starts_a_set_run(admin_browser, admin_user, tiny_model, tarot_template):
    url = f"/admin/albums/album/{tarot_template.pk}/generate/"
    form = admin_browser.get(url)
    assert form.status_code == 200 and 'value="art nouveau"' in form.content.decode()
    response = admin_browser.post(url, {"theme": "art deco", "album_name": "", "steps": "4", "seed": "0"})
    run = SetRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/generation/setrun/{run.pk}/change/"
    assert (run.status, run.theme, run.template, run.created_by) == (
        JobStatus.QUEUED,
        "art deco",
        tarot_template,
        admin_user,
    )
    assert (run.model, run.total_items, run.parameters["steps"], run.parameters["seed"]) == (tiny_model, 6, 4, 0)
    page = admin_browser.get(response["Location"]).content.decode()
    assert f"Started set run #{run.pk}" in page


def test_generate_view_refuses_out_of_limit_sizes(admin_browser, tiny_model, tarot_template):
    url = f"/admin/albums/album/{tarot_template.pk}/generate/"
    response = admin_browser.post(url, {"theme": "art deco", "width": "70"})
    assert response.status_code == 200
    assert "Must be a multiple of 8." in response.content.decode()
    assert SetRun.objects.count() == 0


def test_generate_view_shows_service_refusals(admin_browser, tiny_model):
    empty = AlbumFactory(name="Empty set", is_set_template=True, template_items=[])
    response = admin_browser.post(f"/admin/albums/album/{empty.pk}/generate/", {"theme": "art deco"}, follow=True)
    assert "Set template &#x27;Empty set&#x27; has no items to generate." in response.content.decode()
    assert SetRun.objects.count() == 0


def test_generate_view_refuses_a_non_template_album(admin_browser, tiny_model):
    album = AlbumFactory(name="Holiday photos")
    response = admin_browser.post(f"/admin/albums/album/{album.pk}/generate/", {"theme": "art deco"})
    assert response.status_code == 302
    assert response["Location"] == f"/admin/albums/album/{album.pk}/change/"
    page = admin_browser.get(response["Location"]).content.decode()
    assert "is not a set template" in page
    assert SetRun.objects.count() == 0
