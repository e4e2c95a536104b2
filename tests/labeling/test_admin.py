"""The labeling console: label pages, the image's label inline and NSFW history, top tags, runs, actions."""

import re
from html import unescape
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from albums.models import Image, NsfwFlagChange, NsfwFlagSource, NsfwRating
from imagineer.core.models import JobStatus
from labeling import services
from labeling.models import Label, LabelerResult, LabelingRun, LabelSource, LabelType
from tests.factories import AlbumFactory, UserFactory, make_image

pytestmark = pytest.mark.django_db


class FormFields(HTMLParser):
    """What a browser would submit from one form of a page: its inputs, selects and textareas."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.in_form, self.data = form_id, False, {}
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.in_form = attrs.get("id") == self.form_id
        elif not self.in_form or "name" not in attrs and tag != "option":
            return
        elif tag == "input" and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") != "checkbox":
                self.data[attrs["name"]] = attrs.get("value", "")
            elif "checked" in attrs:
                self.data[attrs["name"]] = attrs.get("value", "on")
        elif tag == "select":
            self._select = attrs["name"]
            self.data.setdefault(self._select, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select] = attrs.get("value", "")
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.data[self._textarea] = ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data.removeprefix("\n") if not self.data[self._textarea] else data


def form_data(browser: Client, url: str, form_id: str) -> dict:
    parser = FormFields(form_id)
    parser.feed(browser.get(url).content.decode())
    return parser.data


def image_form(browser: Client, image) -> tuple[str, dict]:
    url = f"/admin/albums/image/{image.pk}/change/"
    return url, form_data(browser, url, "image_form")


def new_label_rows(data: dict, *rows: dict) -> dict:
    """The image form's data with `rows` as new rows of the label inline (replacing the blank one)."""
    start = int(data["labels-INITIAL_FORMS"])
    for offset, row in enumerate(rows):
        for name, value in row.items():
            data[f"labels-{start + offset}-{name}"] = value
    data["labels-TOTAL_FORMS"] = str(start + len(rows))
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- Label list --------------------------------------------------------------------------------


def test_label_changelist_has_thumbnails_filters_and_no_paths(admin_browser, admin_user, media_root, settings):
    image = make_image()
    services.create_manual_label(image, text="a red fox " * 20, label_type=LabelType.CAPTION, user=admin_user)
    LabelingRun.objects.create(labeler="claude", source_model="claude-x")  # the source-model filter's choices
    html = admin_browser.get("/admin/labeling/label/").content.decode()
    assert "?source_model=claude-x" in html
    assert f"/api/images/{image.pk}/thumbnail" in html
    assert f"/admin/albums/image/{image.pk}/change/" in html
    for filter_name in ("label_type", "source", "source_model", "created_at"):
        assert f"?{filter_name}" in html or f"{filter_name}__" in html, filter_name
    assert "a red fox " * 5 in html and "a red fox " * 20 not in html  # the text is cut short
    assert admin_user.username in html
    assert str(media_root) not in html and str(settings.DATA_DIR) not in html
    assert image.file.name not in html and image.thumbnail.name not in html


def test_label_changelist_queries_do_not_grow_with_rows(admin_browser, admin_user):
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_browser.get("/admin/labeling/label/").status_code == 200
        return len(queries)

    services.create_manual_label(make_image(), text="first", label_type=LabelType.TAG, user=admin_user)
    one_row = queries_for_list()
    for n in range(5):
        services.create_manual_label(make_image(), text=f"more {n}", label_type=LabelType.TAG, user=UserFactory())
    assert queries_for_list() == one_row


def test_label_search_finds_a_label_by_text(admin_browser):
    fox, whale = make_image(), make_image()
    services.create_manual_label(fox, text="red fox", label_type=LabelType.TAG)
    services.create_manual_label(whale, text="blue whale", label_type=LabelType.TAG)
    html = admin_browser.get("/admin/labeling/label/?q=fox").content.decode()
    assert "red fox" in html and "blue whale" not in html


def test_label_search_by_image_id(admin_browser):
    fox, whale = make_image(), make_image()
    services.create_manual_label(fox, text="red fox", label_type=LabelType.TAG)
    services.create_manual_label(whale, text="blue whale", label_type=LabelType.TAG)
    html = admin_browser.get(f"/admin/labeling/label/?q={whale.pk}").content.decode()
    assert "blue whale" in html and "red fox" not in html


def test_label_changelist_links_the_top_tags_page(admin_browser):
    assert "/admin/labeling/label/top-tags/" in admin_browser.get("/admin/labeling/label/").content.decode()


def test_label_add_page_writes_a_persons_label(admin_browser, admin_user):
    image = make_image()
    response = admin_browser.post(
        "/admin/labeling/label/add/", {"image": image.pk, "text": "  Red   FOX ", "label_type": "tag", "confidence": ""}
    )
    assert response.status_code == 302
    label = Label.objects.get()
    assert (label.text, label.source, label.created_by) == ("red fox", LabelSource.MANUAL, admin_user)


def test_label_add_page_shows_a_duplicate_as_an_error(admin_browser):
    image = make_image()
    services.create_manual_label(image, text="red fox", label_type=LabelType.TAG)
    response = admin_browser.post(
        "/admin/labeling/label/add/", {"image": image.pk, "text": "Red Fox", "label_type": "tag", "confidence": ""}
    )
    assert response.status_code == 200
    assert f"Image #{image.pk} already has the tag label" in unescape(response.content.decode())
    assert Label.objects.count() == 1


def test_label_change_page_makes_an_edited_machine_label_a_persons(admin_browser, admin_user):
    image = make_image()
    label = Label.objects.create(image=image, text="fox", label_type="tag", source="claude", source_model="claude-x")
    response = admin_browser.post(
        f"/admin/labeling/label/{label.pk}/change/", {"text": "Red fox", "label_type": "tag", "confidence": "0.5"}
    )
    assert response.status_code == 302
    label.refresh_from_db()
    assert (label.text, label.source, label.source_model, label.created_by) == ("red fox", "manual", "", admin_user)
    assert label.confidence == 0.5


def test_label_change_page_refuses_confidence_over_one(admin_browser):
    label = services.create_manual_label(make_image(), text="fox", label_type=LabelType.TAG)
    response = admin_browser.post(
        f"/admin/labeling/label/{label.pk}/change/", {"text": "fox", "label_type": "tag", "confidence": "1.5"}
    )
    assert response.status_code == 200 and "errornote" in response.content.decode()
    label.refresh_from_db()
    assert label.confidence is None


def test_scraped_label_page_is_read_only_but_deletable(admin_browser):
    label = Label.objects.create(image=make_image(), text="A fox", label_type="alt_text", source="html_metadata")
    html = admin_browser.get(f"/admin/labeling/label/{label.pk}/change/").content.decode()
    assert 'name="text"' not in html and "A fox" in html
    admin_browser.post(f"/admin/labeling/label/{label.pk}/delete/", {"post": "yes"})
    assert not Label.objects.exists()


def test_machine_labels_can_be_deleted_in_bulk(admin_browser):
    image = make_image()
    labels = [Label.objects.create(image=image, text=t, label_type="tag", source="claude") for t in ("a", "b")]
    admin_browser.post(
        "/admin/labeling/label/",
        {"action": "delete_selected", "_selected_action": [label.pk for label in labels], "post": "yes"},
    )
    assert not Label.objects.exists()


# --- The image's label inline ------------------------------------------------------------------


def test_label_added_on_the_image_page_is_a_manual_label_by_the_admin(admin_browser, admin_user):
    image = make_image()
    url, data = image_form(admin_browser, image)
    new_label_rows(data, {"text": "  Red   FOX ", "label_type": "tag", "confidence": "0.9"})
    response = admin_browser.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    label = image.labels.get()
    assert (label.text, label.label_type, label.confidence) == ("red fox", "tag", 0.9)
    assert (label.source, label.created_by) == (LabelSource.MANUAL, admin_user)


def test_duplicate_label_on_the_image_page_is_an_error_and_saves_nothing(admin_browser):
    image = make_image(prompt="old prompt")
    services.create_manual_label(image, text="red fox", label_type=LabelType.TAG)
    url, data = image_form(admin_browser, image)
    new_label_rows(data, {"text": "Red Fox", "label_type": "tag", "confidence": ""})
    data["prompt"] = "new prompt"
    response = admin_browser.post(url, data)
    assert response.status_code == 200
    assert f"Image #{image.pk} already has the tag label" in unescape(response.content.decode())
    assert image.labels.count() == 1
    image.refresh_from_db()
    assert image.prompt == "old prompt"  # the page was not saved


def test_two_equal_new_labels_on_the_image_page_save_neither(admin_browser):
    image = make_image()
    url, data = image_form(admin_browser, image)
    rows = [{"text": "cat", "label_type": "tag", "confidence": ""}, {"text": "CAT", "label_type": "tag"}]
    response = admin_browser.post(url, new_label_rows(data, *rows))
    assert response.status_code == 200
    assert "The tag label 'cat' is on this page twice." in unescape(response.content.decode())
    assert not image.labels.exists()


def test_editing_a_machine_label_on_the_image_page_makes_it_a_persons(admin_browser, admin_user):
    image = make_image()
    label = Label.objects.create(image=image, text="fox", label_type="tag", source="claude", source_model="claude-x")
    url, data = image_form(admin_browser, image)
    assert data["labels-0-id"] == str(label.pk)
    data["labels-0-text"] = "Red fox"
    assert admin_browser.post(url, data).status_code == 302
    label.refresh_from_db()
    assert (label.text, label.source, label.source_model, label.created_by) == ("red fox", "manual", "", admin_user)


def test_unchanged_machine_labels_stay_machine_labels_when_the_image_is_saved(admin_browser):
    image = make_image()
    Label.objects.create(image=image, text="fox", label_type="tag", source="claude")
    Label.objects.create(image=image, text="A fox", label_type="alt_text", source="html_metadata")
    url, data = image_form(admin_browser, image)
    data["prompt"] = "edited"
    assert admin_browser.post(url, data).status_code == 302
    assert sorted(image.labels.values_list("source", flat=True)) == ["claude", "html_metadata"]


def test_label_deleted_on_the_image_page_is_gone(admin_browser):
    image = make_image()
    label = services.create_manual_label(image, text="fox", label_type=LabelType.TAG)
    url, data = image_form(admin_browser, image)
    data["labels-0-DELETE"] = "on"
    assert admin_browser.post(url, data).status_code == 302
    assert not Label.objects.filter(pk=label.pk).exists()


# --- NSFW flags on the image page --------------------------------------------------------------


def test_is_nsfw_changed_on_the_image_form_is_a_recorded_manual_flag(admin_browser, admin_user):
    image = make_image()
    Image.objects.filter(pk=image.pk).update(nsfw_rating=NsfwRating.SAFE, nsfw_flag_source=NsfwFlagSource.MACHINE)
    url, data = image_form(admin_browser, image)
    data["is_nsfw"] = "on"
    data["prompt"] = "edited prompt"
    assert admin_browser.post(url, data).status_code == 302
    image.refresh_from_db()
    assert (image.is_nsfw, image.nsfw_flag_source, image.prompt) == (True, NsfwFlagSource.MANUAL, "edited prompt")
    change = NsfwFlagChange.objects.get(image=image)
    assert (change.is_nsfw, change.source, change.changed_by) == (True, NsfwFlagSource.MANUAL, admin_user)

    html = admin_browser.get(url).content.decode()
    assert "NSFW flag history" in html and admin_user.username in html
    assert "Set by an admin" in html and "Safe" in html  # the flag source and the machine rating


def test_saving_the_image_form_without_touching_is_nsfw_records_nothing(admin_browser):
    image = make_image()
    url, data = image_form(admin_browser, image)
    data["prompt"] = "edited prompt"
    assert admin_browser.post(url, data).status_code == 302
    image.refresh_from_db()
    assert (image.prompt, image.nsfw_flag_source) == ("edited prompt", NsfwFlagSource.UNSET)
    assert not NsfwFlagChange.objects.exists()


def test_nsfw_history_shows_the_labeler_and_its_run(admin_browser):
    image = make_image()
    NsfwFlagChange.objects.create(
        image=image, is_nsfw=True, source="machine", labeler="nudenet:320n", rating="EXPLICIT", labeling_run_id=77
    )
    html = admin_browser.get(f"/admin/albums/image/{image.pk}/change/").content.decode()
    assert "nudenet:320n" in html and "/admin/labeling/labelingrun/77/change/" in html


def test_image_changelist_filters_on_flag_source_and_rating(admin_browser):
    html = admin_browser.get("/admin/albums/image/").content.decode()
    assert "nsfw_flag_source" in html and "nsfw_rating" in html


# --- Image and album actions -------------------------------------------------------------------


def test_detect_nsfw_locally_queues_a_nudenet_run_for_the_selected_images(admin_browser, admin_user):
    images = [make_image() for _ in range(2)]
    make_image()  # not selected
    response = admin_browser.post(
        "/admin/albums/image/",
        {"action": "detect_nsfw_locally", "_selected_action": [i.pk for i in images]},
        follow=True,
    )
    run = LabelingRun.objects.get()
    assert (run.labeler, run.status, run.created_by) == ("nudenet", JobStatus.QUEUED, admin_user)
    assert sorted(run.image_ids) == sorted(i.pk for i in images)
    assert f"/admin/labeling/labelingrun/{run.pk}/change/" in response.content.decode()
    assert any(f"labeling run #{run.pk}" in message for message in messages_of(response))


def test_label_action_reports_images_skipped_as_already_labeled(admin_browser):
    done, fresh = make_image(), make_image()
    LabelerResult.objects.create(image=done, labeler="nudenet", labeled_at="2026-01-01T00:00:00Z")
    response = admin_browser.post(
        "/admin/albums/image/", {"action": "detect_nsfw_locally", "_selected_action": [done.pk, fresh.pk]}, follow=True
    )
    run = LabelingRun.objects.get()
    assert run.image_ids == [fresh.pk] and not run.force
    assert any("1 skipped, already labeled by nudenet" in message for message in messages_of(response))


def test_label_action_with_everything_already_labeled_is_an_error(admin_browser):
    image = make_image()
    LabelerResult.objects.create(image=image, labeler="nudenet", labeled_at="2026-01-01T00:00:00Z")
    response = admin_browser.post(
        "/admin/albums/image/", {"action": "detect_nsfw_locally", "_selected_action": [image.pk]}, follow=True
    )
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1 and "already labeled by nudenet" in errors[0]
    assert not LabelingRun.objects.exists()


def test_label_with_claude_without_an_api_key_is_an_error_and_starts_nothing(admin_browser):
    image = make_image()
    response = admin_browser.post(
        "/admin/albums/image/", {"action": "label_with_claude", "_selected_action": [image.pk]}, follow=True
    )
    assert response.status_code == 200
    errors = [m for m in response.context["messages"] if m.level_tag == "error"]
    assert errors and "ANTHROPIC_API_KEY" in str(errors[0])
    assert not LabelingRun.objects.exists()


def test_label_with_claude_queues_a_claude_run_when_a_key_is_set(admin_browser, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-test-not-a-real-key"  # nothing is sent: no worker runs here
    image = make_image()
    admin_browser.post("/admin/albums/image/", {"action": "label_with_claude", "_selected_action": [image.pk]})
    run = LabelingRun.objects.get()
    assert (run.labeler, run.image_ids) == ("claude", [image.pk])


def test_album_action_message_names_the_album_and_links_the_run(admin_browser):
    album = AlbumFactory(name="Zodiac")
    make_image(album=album)
    response = admin_browser.post(
        "/admin/albums/album/", {"action": "detect_nsfw_locally", "_selected_action": [album.pk]}, follow=True
    )
    run = LabelingRun.objects.get()
    assert [str(m) for m in response.context["messages"]] == [
        f'Started <a href="/admin/labeling/labelingrun/{run.pk}/change/">labeling run #{run.pk}</a> '
        "(NudeNet local NSFW detector) over 1 image(s) of album &#x27;Zodiac&#x27;."
    ]


def test_release_action_lets_the_machine_rating_decide_again(admin_browser):
    image = make_image(is_nsfw=True)  # the uploader's manual flag
    Image.objects.filter(pk=image.pk).update(nsfw_rating=NsfwRating.SAFE)
    response = admin_browser.post(
        "/admin/albums/image/", {"action": "release_nsfw_flags", "_selected_action": [image.pk]}, follow=True
    )
    image.refresh_from_db()
    assert (image.is_nsfw, image.nsfw_flag_source) == (False, NsfwFlagSource.MACHINE)
    assert any("1 of 1 selected image(s) had a manual NSFW flag" in m for m in messages_of(response))


def test_album_action_on_an_empty_album_says_so_and_starts_nothing(admin_browser):
    album = AlbumFactory(name="Nothing here")
    response = admin_browser.post(
        "/admin/albums/album/", {"action": "detect_nsfw_locally", "_selected_action": [album.pk]}, follow=True
    )
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert errors == ["Album 'Nothing here' has no images, so there is nothing to label."]
    assert not LabelingRun.objects.exists()


def test_album_action_starts_one_run_per_album(admin_browser):
    first, second = AlbumFactory(name="First"), AlbumFactory(name="Second")
    first_images = [make_image(album=first) for _ in range(2)]
    second_image = make_image(album=second)
    response = admin_browser.post(
        "/admin/albums/album/",
        {"action": "detect_nsfw_locally", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    runs = {run.album_id: run for run in LabelingRun.objects.all()}
    assert runs[first.pk].image_ids == [i.pk for i in first_images]  # album order
    assert runs[second.pk].image_ids == [second_image.pk]
    html = response.content.decode()
    assert all(f"/admin/labeling/labelingrun/{run.pk}/change/" in html for run in runs.values())


def test_album_label_with_claude_without_a_key_is_one_error(admin_browser):
    albums = [AlbumFactory() for _ in range(2)]
    for album in albums:
        make_image(album=album)
    response = admin_browser.post(
        "/admin/albums/album/", {"action": "label_with_claude", "_selected_action": [a.pk for a in albums]}, follow=True
    )
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1 and "ANTHROPIC_API_KEY" in errors[0]
    assert not LabelingRun.objects.exists()


# --- Top tags ----------------------------------------------------------------------------------


def top_tag_rows(html: str) -> list[tuple[str, str, str]]:
    table = html[html.index('id="top_tags"') :]
    table = table[: table.index("</table>")]
    cells = re.findall(
        r"<tr>\s*<td>\d+</td>\s*<td><a [^>]*>([^<]*)</a></td>\s*<td[^>]*>(\d+)</td>\s*"
        r"<td[^>]*>([\d.]+%)</td>",
        table,
    )
    return [(unescape(tag), count, share) for tag, count, share in cells]


@pytest.fixture
def tagged_albums(db):
    """Album A: cat ×2, dog ×1; album B: dog, bird. Plus a caption, which is no tag."""
    album_a, album_b = AlbumFactory(name="Album A"), AlbumFactory(name="Album B")
    one, two, three = make_image(album=album_a), make_image(album=album_a), make_image(album=album_b)
    for image, texts in ((one, ["cat", "dog"]), (two, ["cat"]), (three, ["dog", "bird"])):
        for text in texts:
            services.create_manual_label(image, text=text, label_type=LabelType.TAG)
    services.create_manual_label(one, text="a cat and a dog", label_type=LabelType.CAPTION)
    return album_a, album_b


def test_top_tags_page_counts_every_tag(admin_browser, tagged_albums):
    html = admin_browser.get("/admin/labeling/label/top-tags/").content.decode()
    assert top_tag_rows(html) == [("cat", "2", "40.0%"), ("dog", "2", "40.0%"), ("bird", "1", "20.0%")]
    assert "a cat and a dog" not in html


def test_top_tags_page_filters_by_album(admin_browser, tagged_albums):
    album_a, _ = tagged_albums
    response = admin_browser.get(f"/admin/labeling/label/top-tags/?album={album_a.pk}")
    assert top_tag_rows(response.content.decode()) == [("cat", "2", "66.67%"), ("dog", "1", "33.33%")]
    assert f'<option value="{album_a.pk}" selected>Album A</option>' in response.content.decode()


def test_top_tags_page_filters_by_label_type(admin_browser, tagged_albums):
    album_a, _ = tagged_albums
    services.create_manual_label(album_a.images.first(), text="Fluffy", label_type=LabelType.MANUAL)
    html = admin_browser.get("/admin/labeling/label/top-tags/?label_type=manual").content.decode()
    assert top_tag_rows(html) == [("Fluffy", "1", "100.0%")]


def test_top_tags_page_pages_through_tags(admin_browser, tagged_albums):
    first = admin_browser.get("/admin/labeling/label/top-tags/?limit=10").content.decode()
    assert [tag for tag, _, _ in top_tag_rows(first)] == ["cat", "dog", "bird"]
    assert "Next 10" not in first and "Previous 10" not in first  # three tags fit one page
    image = make_image()
    for n in range(10):
        services.create_manual_label(image, text=f"tag {n:02}", label_type=LabelType.TAG)
    page = admin_browser.get("/admin/labeling/label/top-tags/?limit=10&offset=10").content.decode()
    assert [tag for tag, _, _ in top_tag_rows(page)] == ["tag 07", "tag 08", "tag 09"]
    assert "Previous 10" in page and "Next 10" not in page


def test_top_tags_page_refuses_a_bad_filter_without_error(admin_browser, tagged_albums):
    response = admin_browser.get("/admin/labeling/label/top-tags/?album=999999&label_type=caption")
    assert response.status_code == 200 and "errornote" in response.content.decode()


# --- Labeling runs -----------------------------------------------------------------------------


def test_labeling_run_pages_show_counts_and_failures(admin_browser):
    album = AlbumFactory(name="Zodiac")
    image = make_image(album=album)
    run = LabelingRun.objects.create(
        labeler="claude",
        album=album,
        image_ids=[image.pk, 424242],
        status=JobStatus.SUCCEEDED,
        succeeded_count=1,
        failed_count=1,
        skipped_count=3,
        input_tokens=1200,
        output_tokens=345,
        failures=[{"image_id": 424242, "error": "The answer was not JSON <got: prose>"}],
    )
    listing = admin_browser.get("/admin/labeling/labelingrun/").content.decode()
    assert "Zodiac" in listing and "1,200 / 345" in listing
    html = admin_browser.get(f"/admin/labeling/labelingrun/{run.pk}/change/").content.decode()
    assert "/admin/albums/image/424242/change/" in html and "Image #424242" in html
    assert "The answer was not JSON &lt;got: prose&gt;" in html
    assert '[{"image_id"' not in html and "[{&quot;image_id" not in html  # a table, not raw JSON
