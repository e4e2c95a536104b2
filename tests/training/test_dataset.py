"""Which images and captions a run trains on."""

import json

import pytest

from generation.models import DiffusionModel, ModelSource
from labeling.models import Label, LabelSource, LabelType
from tests.factories import AlbumFactory, make_image
from training.services import runs

pytestmark = pytest.mark.django_db


def caption(image, text, source=LabelSource.CLAUDE):
    return Label.objects.create(image=image, text=text, label_type=LabelType.CAPTION, source=source)


def test_a_person_s_caption_wins_then_the_newest_machine_one():
    album = AlbumFactory()
    manual_first, machine_only, blank, bare = (make_image(album=album) for _ in range(4))
    caption(manual_first, "written by a person", LabelSource.MANUAL)
    caption(manual_first, "a newer machine caption")
    caption(machine_only, "older machine caption")
    caption(machine_only, "newer machine caption", LabelSource.LEGACY_IMPORT)
    caption(blank, "   ")
    Label.objects.create(image=bare, text="just a tag", label_type=LabelType.TAG)
    dataset = runs.collect_dataset([album], trigger_words=" kitez , ink style,")
    assert [item.caption for item in dataset.items] == [
        "kitez, ink style, written by a person",
        "kitez, ink style, newer machine caption",
    ]
    assert (dataset.captioned, dataset.uncaptioned, dataset.manual) == (2, 2, 1)


def test_an_image_in_two_albums_is_trained_on_once_in_album_order():
    first, second = AlbumFactory(), AlbumFactory()
    shared, only_second = make_image(album=first), make_image(album=second)
    second.album_images.create(image=shared, sort_order=5)
    for image in (shared, only_second):
        caption(image, f"caption {image.pk}")
    dataset = runs.collect_dataset([first, second])
    assert [item.image.pk for item in dataset.items] == [shared.pk, only_second.pk]


def test_files_gone_from_storage_are_skipped_counted_and_can_stop_the_run(tmp_path, runtime_config_file, admin_user):
    from training.models import TrainingRun

    runtime_config_file.write_text("training:\n  min_captioned_images: 2\n")
    album = AlbumFactory()
    images = [make_image(album=album) for _ in range(3)]
    for image in images:
        caption(image, f"caption {image.pk}")
    model = DiffusionModel.objects.create(name="m", source_type=ModelSource.DIFFUSERS_DIR, source="x", family="sd1")
    # Claimed, as in the worker: prepare_dataset writes the counts under the run's claim.
    run = TrainingRun.objects.create(name="r", model=model, parameters={"steps": 1}, status="running", attempts=1)
    run.albums.set([album])
    images[0].file.storage.delete(images[0].file.name)
    dataset = runs.prepare_dataset(run, tmp_path / "ds")
    assert dataset.captioned == 2
    manifest = [json.loads(line) for line in (tmp_path / "ds" / "metadata.jsonl").read_text().splitlines()]
    assert [entry["text"] for entry in manifest] == [f"caption {images[1].pk}", f"caption {images[2].pk}"]
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["00002.png", "00003.png", "metadata.jsonl"]
    run.refresh_from_db()
    assert (run.captioned_images, run.missing_files) == (2, 1)
    images[1].file.storage.delete(images[1].file.name)
    with pytest.raises(runs.TooFewCaptions, match="Found 1 captioned image.*2 whose file is missing"):
        runs.prepare_dataset(run, tmp_path / "ds2")
