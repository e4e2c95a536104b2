"""The label-text tally (labeling/tally.py): exact under every write path, and safe under concurrency.

The tally-backed analytics are compared with the live GROUP BY over the labels (`live=True`),
and the tally rows themselves with a count made in Python, after random batches of every kind of
write: creates, bulk creates, deletes (one, a queryset, an image's cascade), edits of text, type
and image, and images turning private/NSFW and back, by save() and by queryset update.
"""

import random
import threading
import uuid
from collections import Counter

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from albums.models import Image
from labeling import analytics, tally
from labeling.analytics import LabelFilters
from labeling.models import (
    TAG_TYPES,
    Label,
    LabelTallyImageChange,
    LabelTextDelta,
    LabelTextTally,
    LabelType,
    label_text_key,
)
from tests.factories import AdminFactory, UserFactory

# Shared texts across types and images; byte-order ties ("A" < "_x" < "a"), spaces, non-ASCII.
VOCABULARY = ["cat", "Cat", "dog", "A", "a", "_x", "blue sky", "café", "ünïcode", "cat "]
TYPES = LabelType.values
FILTERS = [
    LabelFilters(),
    LabelFilters(limit=2, offset=3),
    LabelFilters(offset=50),  # past the end: totals still right
    LabelFilters(label_type=LabelType.TAG, limit=3),
    LabelFilters(label_type=LabelType.MANUAL, offset=1),
    LabelFilters(label_type=LabelType.CAPTION),  # not a tag type
    LabelFilters(label_type=LabelType.ALT_TEXT),
]


def _image(*, is_public: bool = True, is_nsfw: bool = False, owner=None) -> Image:
    """A bare Image row (no file): the tally only reads is_public and is_nsfw."""
    return Image.objects.create(
        file=f"t/{uuid.uuid4().hex}.png",
        sha256=uuid.uuid4().hex * 2,
        width=1,
        height=1,
        format="PNG",
        is_public=is_public,
        is_nsfw=is_nsfw,
        created_by=owner,
    )


def _label(image: Image, text: str, label_type: str) -> Label:
    return Label(image=image, text=text, text_key=label_text_key(text), label_type=label_type)


def _expected_rows() -> dict[tuple[str, str], tuple[str, int, int]]:
    """The tally as it must be, counted in Python from every label and its image's flags now."""
    totals, hidden, texts = Counter(), Counter(), {}
    for key, label_type, text, is_public, is_nsfw in Label.objects.values_list(
        "text_key", "label_type", "text", "image__is_public", "image__is_nsfw"
    ):
        scopes = [label_type, LabelTextTally.ALL] + ([LabelTextTally.TAGS] if label_type in TAG_TYPES else [])
        for scope in scopes:
            totals[key, scope] += 1
            hidden[key, scope] += not (is_public and not is_nsfw)
            texts[key, scope] = text
    return {k: (texts[k], totals[k], hidden[k]) for k in totals}


def _tally_rows() -> dict[tuple[str, str], tuple[str, int, int]]:
    tally.compact_label_tallies()
    return {
        (key, scope): (text, total, hidden)
        for key, scope, text, total, hidden in LabelTextTally.objects.values_list(
            "text_key", "scope", "text", "total", "hidden"
        )
    }


def _assert_tally_answers_like_the_labels(users) -> None:
    assert _tally_rows() == _expected_rows()
    for user in users:
        for filters in FILTERS:
            assert analytics.label_stats(user, filters) == analytics.label_stats(user, filters, live=True), filters
            assert analytics.top_tags(user, filters) == analytics.top_tags(user, filters, live=True), filters


class _Writer:
    """Random writes of every kind the application (or an admin's shell) makes."""

    def __init__(self, rng: random.Random, owner) -> None:
        self.rng = rng
        self.owner = owner
        self.images = [self._new_image() for _ in range(6)]

    def _new_image(self) -> Image:
        return _image(
            is_public=self.rng.random() < 0.7,
            is_nsfw=self.rng.random() < 0.2,
            owner=self.owner if self.rng.random() < 0.3 else None,
        )

    def _some_label(self) -> Label | None:
        return Label.objects.order_by("?").first()

    def _text(self) -> str:
        return self.rng.choice(VOCABULARY)

    def create(self) -> None:
        label = _label(self.rng.choice(self.images), self._text(), self.rng.choice(TYPES))
        try:
            with transaction.atomic():
                label.save()
        except IntegrityError:
            pass  # the image already has this (type, text)

    def bulk_create(self) -> None:
        rows = [
            _label(self.rng.choice(self.images), self._text(), self.rng.choice(TYPES))
            for _ in range(self.rng.randint(1, 12))
        ]
        Label.objects.bulk_create(rows, ignore_conflicts=True)

    def delete_one(self) -> None:
        if label := self._some_label():
            label.delete()

    def delete_queryset(self) -> None:
        if self.rng.random() < 0.5:
            Label.objects.filter(text=self._text()).delete()
        else:
            Label.objects.filter(image=self.rng.choice(self.images), label_type=self.rng.choice(TYPES)).delete()

    def edit(self) -> None:
        if not (label := self._some_label()):
            return
        change = self.rng.randrange(3)
        if change == 0:
            label.text = self._text()
        elif change == 1:
            label.label_type = self.rng.choice(TYPES)
        else:
            label.image = self.rng.choice(self.images)
        try:
            with transaction.atomic():
                label.save()
        except IntegrityError:
            pass

    def update_queryset(self) -> None:
        text = self._text()
        try:
            with transaction.atomic():
                if self.rng.random() < 0.5:
                    Label.objects.filter(label_type=self.rng.choice(TYPES), text=self._text()).update(
                        text=text, text_key=label_text_key(text)
                    )
                else:
                    Label.objects.filter(image=self.rng.choice(self.images)).update(label_type=self.rng.choice(TYPES))
        except IntegrityError:
            pass
        # Rows the triggers must not count as moved: nothing about their text, type or image changes.
        Label.objects.filter(text=text).update(confidence=self.rng.random())

    def flip_by_save(self) -> None:
        image = self.rng.choice(self.images)
        if self.rng.random() < 0.5:
            image.is_public = not image.is_public
        else:
            image.is_nsfw = not image.is_nsfw
        image.save()

    def flip_by_queryset(self) -> None:
        chosen = self.rng.sample(self.images, self.rng.randint(1, 3))
        Image.objects.filter(pk__in=[i.pk for i in chosen]).update(
            is_public=self.rng.random() < 0.6, is_nsfw=self.rng.random() < 0.3
        )
        for image in chosen:
            image.refresh_from_db()

    def delete_image(self) -> None:
        image = self.images.pop(self.rng.randrange(len(self.images)))
        image.delete()  # Django deletes the labels first, then the image
        self.images.append(self._new_image())

    def new_image_with_labels(self) -> None:
        with transaction.atomic():  # created hidden and labeled in one transaction
            image = self._new_image()
            Label.objects.bulk_create(
                [_label(image, self._text(), self.rng.choice(TYPES)) for _ in range(3)], ignore_conflicts=True
            )
        self.images.append(image)

    def step(self) -> None:
        operations = [
            (self.create, 4),
            (self.bulk_create, 3),
            (self.delete_one, 2),
            (self.delete_queryset, 1),
            (self.edit, 2),
            (self.update_queryset, 1),
            (self.flip_by_save, 2),
            (self.flip_by_queryset, 1),
            (self.delete_image, 1),
            (self.new_image_with_labels, 1),
        ]
        operation = self.rng.choices([op for op, _ in operations], weights=[w for _, w in operations])[0]
        operation()


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_writes_keep_the_tally_equal_to_grouping_the_labels(seed):
    owner = UserFactory()
    users = [AdminFactory(), AnonymousUser(), owner]
    writer = _Writer(random.Random(seed), owner)
    for _ in range(10):
        for _ in range(writer.rng.randint(1, 10)):
            writer.step()
        _assert_tally_answers_like_the_labels(users)
    assert Label.objects.count() > 10  # the walk did build something up


@pytest.mark.django_db
def test_rebuild_recounts_what_the_triggers_counted():
    writer = _Writer(random.Random(7), UserFactory())
    for _ in range(60):
        writer.step()
    incremental = _tally_rows()
    tally.rebuild_label_tallies()
    assert _tally_rows() == incremental == _expected_rows()


@pytest.mark.django_db
def test_a_text_whose_last_label_goes_leaves_no_row():
    image = _image()
    label = Label.objects.create(image=image, text="only once", label_type=LabelType.TAG)
    assert {scope for _, scope in _tally_rows()} == {LabelType.TAG, LabelTextTally.ALL, LabelTextTally.TAGS}
    label.delete()
    assert _tally_rows() == {}


@pytest.mark.django_db
def test_compaction_costs_the_same_statements_whatever_is_pending():
    tally.compact_label_tallies()
    with CaptureQueriesContext(connection) as idle:
        tally.compact_label_tallies()
    images = [_image(is_public=n % 3 != 0) for n in range(20)]
    Label.objects.bulk_create(_label(i, f"t{n}", TYPES[n % len(TYPES)]) for i in images for n in range(15))
    assert LabelTextDelta.objects.count() == 300 and LabelTallyImageChange.objects.exists()
    with CaptureQueriesContext(connection) as busy:
        tally.compact_label_tallies()
    assert len(busy) == len(idle)
    assert not LabelTextDelta.objects.exists() and not LabelTallyImageChange.objects.exists()


@pytest.mark.django_db
def test_after_migrate_a_missing_trigger_is_reinstalled_and_the_tally_recounted():
    image = _image()
    tally.drop_triggers(connection)
    Label.objects.create(image=image, text="written while the triggers were gone", label_type=LabelType.TAG)
    assert tally.missing_triggers(connection) == set(tally.TRIGGER_NAMES[connection.vendor])
    tally.sync_after_migrate("default")
    assert tally.missing_triggers(connection) == set()
    assert _tally_rows() == _expected_rows() != {}


@pytest.mark.django_db
def test_truncating_the_labels_empties_the_tally():
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    Label.objects.create(image=_image(), text="gone", label_type=LabelType.TAG)
    tally.compact_label_tallies()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred foreign-key checks left to block TRUNCATE
        cursor.execute("TRUNCATE labeling_label")
    assert _tally_rows() == {}


# --- concurrency (PostgreSQL: SQLite has one writer at a time) ---------------------------------

postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL (SQLite has one writer)"
)


def _in_thread(target, *args) -> threading.Thread:
    def run():
        try:
            target(*args)
        except BaseException as exc:  # surfaced by the test through errors
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    errors: list[BaseException] = []
    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors
    thread.start()
    return thread


def _joined(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a thread is stuck (deadlock or lock wait)"
        assert not thread.errors, thread.errors


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_writers_adding_the_same_tags_in_opposite_orders_both_commit():
    first, second = _image(), _image(is_public=False)
    tags = [f"hot tag {n}" for n in range(30)]
    both_written = threading.Barrier(3, timeout=20)

    def write(image, texts):
        with transaction.atomic():
            for text in texts:  # one statement per tag: each appends to the shared tags' deltas
                Label.objects.create(image=image, text=text, label_type=LabelType.TAG)
            both_written.wait()  # both transactions open, holding every tag written...
            both_written.wait()  # ...while the main thread compacts

    writers = [_in_thread(write, first, tags), _in_thread(write, second, tags[::-1])]
    both_written.wait()
    tally.compact_label_tallies()  # does not wait for the open writers: their rows are not visible yet
    assert not LabelTextTally.objects.exists()
    both_written.wait()
    _joined(*writers)

    rows = _tally_rows()
    assert rows == _expected_rows()
    assert rows[label_text_key("hot tag 0"), LabelType.TAG][1:] == (2, 1)  # on both images, one hidden


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_label_written_while_its_image_turns_private_counts_as_hidden():
    image = _image()
    label_written, flipped = threading.Barrier(2, timeout=20), threading.Event()

    def label_then_commit_late():
        with transaction.atomic():
            Label.objects.create(image=image, text="racing tag", label_type=LabelType.TAG)
            label_written.wait()
            assert flipped.wait(timeout=20)

    def flip():
        label_written.wait()
        Image.objects.filter(pk=image.pk).update(is_public=False)  # commits before the label does
        tally.compact_label_tallies()
        flipped.set()

    _joined(_in_thread(label_then_commit_late), _in_thread(flip))
    assert _tally_rows() == _expected_rows()
    assert analytics.top_tags(AnonymousUser(), LabelFilters())["results"] == []
    assert analytics.top_tags(AnonymousUser(), LabelFilters()) == analytics.top_tags(
        AnonymousUser(), LabelFilters(), live=True
    )
