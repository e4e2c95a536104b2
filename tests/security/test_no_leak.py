"""No private, NSFW or unchecked image reaches a non-admin, through any path, in any mixture of flags.

Hypothesis draws small worlds: images with random is_public/is_nsfw/owner and NSFW check state
(some flipped after they were labeled, through the admin's bulk service or a raw queryset update;
the check ending, failing or starting again afterwards), with the autocheck on or off, labels whose texts
are shared or unique to one image, albums public or private holding random images, and
generation jobs whose outputs are their owner's images. For each world, anonymous, "user" and
"other" read every path that can show an image, a label or a count, and each answer must be
exactly what the rules of docs/API.md and docs/ANALYTICS.md allow: image lists, details, files,
thumbnails, label lists, album pages and counts, filters and search show the images the caller
may see (public, not NSFW and cleared by the NSFW check, plus a signed-in user's own non-NSFW
ones, checked or not); label analytics count the public, non-NSFW, cleared images only, for every
non-admin alike.

Each world is built and read inside a savepoint that is rolled back, so worlds never mix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from albums import services as album_services
from albums.models import CHECK_CLEARED, AlbumImage, Image, NsfwCheck
from generation.models import DiffusionModel, GenerationJob, ModelSource
from labeling.models import TAG_TYPES, Label, LabelType, label_text_key
from tests.factories import AlbumFactory, make_image
from tests.security.helpers import answer_and_forget

pytestmark = pytest.mark.django_db

READERS = ("anon", "user", "other")
OWNERS = ("admin", "user", "other", None)
SHARED_TEXTS = ("cat", "dog", "moon")
LABEL_TYPES = (LabelType.TAG, LabelType.MANUAL, LabelType.CAPTION)
WORDS = ("harbor", "forest")


@dataclass
class ImageSpec:
    is_public: bool
    is_nsfw: bool
    owner: str | None
    word: str
    labels: frozenset[tuple[str, str]]  # (label_type, text); "own" stands for a text only this image has
    flip: tuple[bool, bool] | None  # (is_public, is_nsfw) set after labeling, or None
    flip_by_service: bool
    generated: bool
    nsfw_check: str = NsfwCheck.NOT_REQUIRED  # the check's state once stored
    # The check's state set after labeling and flipping (by the check's own services or a raw update), or None.
    check_after: str | None = None


image_specs = st.builds(
    ImageSpec,
    is_public=st.booleans(),
    is_nsfw=st.booleans(),
    owner=st.sampled_from(OWNERS),
    word=st.sampled_from(WORDS),
    labels=st.frozensets(st.tuples(st.sampled_from(LABEL_TYPES), st.sampled_from((*SHARED_TEXTS, "own"))), max_size=3),
    flip=st.none() | st.tuples(st.booleans(), st.booleans()),
    flip_by_service=st.booleans(),
    generated=st.booleans(),
    nsfw_check=st.sampled_from(NsfwCheck.values),
    check_after=st.none() | st.sampled_from(NsfwCheck.values),
)


@st.composite
def worlds(draw):
    images = draw(st.lists(image_specs, min_size=1, max_size=4))
    album_members = st.frozensets(st.integers(0, len(images) - 1))
    albums = draw(st.lists(st.tuples(st.booleans(), album_members), max_size=2))
    label_type = draw(st.sampled_from((None, *LABEL_TYPES)))
    return images, albums, label_type, draw(st.booleans())


@dataclass
class World:
    images: list[Image]
    specs: list[ImageSpec]
    labels: dict[int, list[tuple[str, str]]]  # image id → its (label_type, text)
    albums: dict[int, tuple[bool, set[int]]]  # album id → (is_public, image ids)
    autocheck: bool

    def final_flags(self, index: int) -> tuple[bool, bool]:
        spec = self.specs[index]
        return spec.flip or (spec.is_public, spec.is_nsfw)

    def final_check(self, index: int) -> str:
        """The NSFW check's state in the end: as made, pending where the admin's service made a
        private image public with the autocheck on, or what was set after."""
        spec = self.specs[index]
        check = spec.nsfw_check
        made_public = spec.flip is not None and spec.flip[0] and not spec.is_public
        if made_public and spec.flip_by_service and self.autocheck and check == NsfwCheck.NOT_REQUIRED:
            check = NsfwCheck.PENDING
        return spec.check_after or check

    def visible_to(self, reader: str) -> set[int]:
        """What albums.models.visible_images_q lets a non-admin see, from the spec, not the query."""
        seen = set()
        for index, image in enumerate(self.images):
            is_public, is_nsfw = self.final_flags(index)
            cleared = self.final_check(index) in CHECK_CLEARED
            own = reader != "anon" and self.specs[index].owner == reader
            if not is_nsfw and ((is_public and cleared) or own):
                seen.add(image.pk)
        return seen

    def public(self) -> set[int]:
        return self.visible_to("anon")

    def __str__(self) -> str:
        lines = [
            f"image {image.pk}: public/nsfw {self.final_flags(n)} (made {spec.is_public, spec.is_nsfw}), "
            f"check {self.final_check(n)} (made {spec.nsfw_check}, then {spec.check_after}), "
            f"owner {spec.owner}, labels {self.labels[image.pk]}, generated {spec.generated}"
            for n, (image, spec) in enumerate(zip(self.images, self.specs, strict=True))
        ]
        lines.append(f"autocheck {'on' if self.autocheck else 'off'}")
        lines += [
            f"album {pk}: public {is_public}, images {sorted(ids)}" for pk, (is_public, ids) in self.albums.items()
        ]
        return "\n".join(lines)

    def public_albums(self) -> list[int]:
        return sorted(pk for pk, (is_public, _) in self.albums.items() if is_public)


def build(spec_images: list[ImageSpec], spec_albums, users: dict, autocheck: bool) -> World:
    images, labels = [], {}
    for index, spec in enumerate(spec_images):
        image = make_image(
            prompt=f"image {index} at the {spec.word}",
            is_public=spec.is_public,
            is_nsfw=spec.is_nsfw,
            user=users[spec.owner] if spec.owner else None,
            nsfw_check=spec.nsfw_check,
        )
        texts = [(kind, f"secret-{image.pk}" if text == "own" else text) for kind, text in sorted(spec.labels)]
        Label.objects.bulk_create(
            [Label(image=image, label_type=kind, text=text, text_key=label_text_key(text)) for kind, text in texts]
        )
        images.append(image)
        labels[image.pk] = texts
    for image, spec in zip(images, spec_images, strict=True):
        if spec.flip is None:
            continue
        is_public, is_nsfw = spec.flip
        if spec.flip_by_service:
            album_services.set_image_flags([image.pk], is_public=is_public, is_nsfw=is_nsfw, user=users["admin"])
        else:
            Image.objects.filter(pk=image.pk).update(is_public=is_public, is_nsfw=is_nsfw)
    for image, spec in zip(images, spec_images, strict=True):
        set_check_after(image, spec)
    albums = {}
    for is_public, members in spec_albums:
        album = AlbumFactory(is_public=is_public)
        ids = {images[index].pk for index in members}
        AlbumImage.objects.bulk_create([AlbumImage(album=album, image_id=pk, sort_order=n) for n, pk in enumerate(ids)])
        albums[album.pk] = (is_public, ids)
    model = DiffusionModel.objects.get_or_create(
        name="leak-model", defaults={"source_type": ModelSource.HUB, "source": "example/leak-model"}
    )[0]
    for owner in ("user", "other"):
        outputs = [
            image for image, spec in zip(images, spec_images, strict=True) if spec.generated and spec.owner == owner
        ]
        job = GenerationJob.objects.create(
            created_by=users[owner],
            prompt="p",
            model=model,
            scheduler="euler",
            steps=1,
            guidance_scale=1.0,
            width=64,
            height=64,
            seed=1,
        )
        job.images.set(outputs)
    return World(images=images, specs=spec_images, labels=labels, albums=albums, autocheck=autocheck)


def set_check_after(image: Image, spec: ImageSpec) -> None:
    """The check starting again or ending after labeling: through its services, or a raw update."""
    state = spec.check_after
    if state is None:
        return
    if not spec.flip_by_service or state == NsfwCheck.NOT_REQUIRED:  # no service goes back to "not required"
        Image.objects.filter(pk=image.pk).update(nsfw_check=state)
        return
    album_services.mark_nsfw_checks_pending([image.pk])  # an admin's "Check NSFW now"
    if state != NsfwCheck.PENDING:
        album_services.end_nsfw_checks([image.pk], passed=state == NsfwCheck.PASSED, reason="the labeler failed")


def get(client, path: str):
    response = answer_and_forget(client, "GET", path)
    return response.status_code, (response.json() if response["Content-Type"].startswith("application/json") else None)


def ids_of(page: dict) -> set[int]:
    return {item["id"] for item in page["results"]}


def check_image_paths(client, world: World, reader: str) -> list[str]:
    wrong, visible = [], world.visible_to(reader)

    def listing(query: str, expected: set[int]) -> None:
        status, page = get(client, f"/api/images/?page_size=200&{query}")
        if status != 200 or ids_of(page) != expected or page["count"] != len(expected):
            wrong.append(f"/api/images/?{query}: {status} {page and sorted(ids_of(page))}, expected {sorted(expected)}")

    listing("", visible)
    for word in WORDS:
        listing(f"q={word}", {i.pk for i, s in zip(world.images, world.specs, strict=True) if s.word == word} & visible)
    listing("is_nsfw=true", set())
    listing("is_public=false", {i.pk for n, i in enumerate(world.images) if not world.final_flags(n)[0]} & visible)
    for album_id, (is_public, members) in world.albums.items():
        listing(f"album={album_id}", members & visible if is_public else set())
    listing(f"sha256={world.images[0].sha256}", {world.images[0].pk} & visible)
    for image in world.images:
        expected = 200 if image.pk in visible else 404
        status, _ = get(client, f"/api/images/{image.pk}/")
        if status != expected:
            wrong.append(f"/api/images/{image.pk}/: {status}, expected {expected}")
        for suffix in ("file", "thumbnail"):
            response = answer_and_forget(client, "GET", f"/api/images/{image.pk}/{suffix}")
            # A shared cache may keep only what everyone may see: an owner's private image is no-store.
            public = image.pk in world.public()
            if response.status_code != expected or (
                expected == 200 and response["Cache-Control"].startswith("public") != public
            ):
                wrong.append(f"/api/images/{image.pk}/{suffix}: {response.status_code} {response.get('Cache-Control')}")
        status, body = get(client, f"/api/images/{image.pk}/labels/")
        texts = sorted((label["label_type"], label["text"]) for label in body["results"]) if status == 200 else None
        if (status, texts) != (expected, sorted(world.labels[image.pk]) if expected == 200 else None):
            wrong.append(f"/api/images/{image.pk}/labels/: {status} {texts}, expected {expected}")
    if reader != "anon":
        status, page = get(client, "/api/generation/jobs/?page_size=200")
        for job in page["results"]:
            shown = set(job["image_ids"]) | {image["id"] for image in job["images"]}
            if shown - visible:
                wrong.append(f"/api/generation/jobs/{job['id']}/ shows images {sorted(shown - visible)}")
    return wrong


def check_album_paths(client, world: World, reader: str) -> list[str]:
    wrong, visible = [], world.visible_to(reader)
    status, page = get(client, "/api/albums/?page_size=200")
    counts = {album["id"]: album["image_count"] for album in page["results"]}
    expected = {pk: len(world.albums[pk][1] & visible) for pk in world.public_albums()}
    if counts != expected:
        wrong.append(f"/api/albums/: counts {counts}, expected {expected}")
    for album_id, (is_public, members) in world.albums.items():
        status, detail = get(client, f"/api/albums/{album_id}/?page_size=200")
        shown = (detail["image_count"], ids_of(detail["images"])) if status == 200 else None
        if (status, shown) != ((200, (len(members & visible), members & visible)) if is_public else (404, None)):
            wrong.append(f"/api/albums/{album_id}/: {status} {shown}")
        status, page = get(client, f"/api/albums/{album_id}/images/?page_size=200")
        if (status, ids_of(page) if status == 200 else None) != (
            (200, members & visible) if is_public else (404, None)
        ):
            wrong.append(f"/api/albums/{album_id}/images/: {status}")
    return wrong


def expected_analytics(world: World, album_members: set[int] | None, label_type: str | None) -> dict:
    scope = world.public() if album_members is None else world.public() & album_members
    labels = [(kind, text) for pk in scope for kind, text in world.labels[pk] if label_type in (None, kind)]
    tags = Counter(text for kind, text in labels if kind in TAG_TYPES)
    return {
        "images_total": len(scope),
        "total_labels": len(labels),
        "unique_labels": len({text for _, text in labels}),
        "images_with_labels": sum(1 for pk in scope if any(label_type in (None, kind) for kind, _ in world.labels[pk])),
        "by_type": Counter(kind for kind, _ in labels),
        "tags": dict(tags),
    }


def check_label_analytics(client, world: World, label_type: str | None) -> list[str]:
    """The same figures for every non-admin: public, non-NSFW images only (docs/ANALYTICS.md)."""
    wrong, of_type = [], f"&label_type={label_type}" if label_type else ""
    for album_id in [None, *world.albums]:
        query = of_type + (f"&album={album_id}" if album_id is not None else "")
        if album_id is not None and not world.albums[album_id][0]:
            status, _ = get(client, f"/api/labels/stats?limit=100{query}")
            if status != 400:
                wrong.append(f"/api/labels/stats?{query}: {status} for a private album, expected 400")
            continue
        want = expected_analytics(world, None if album_id is None else world.albums[album_id][1], label_type)
        _, stats = get(client, f"/api/labels/stats?limit=100{query}")
        got = {
            "images_total": stats["images_total"],
            "total_labels": stats["total_labels"],
            "unique_labels": stats["unique_labels"],
            "images_with_labels": stats["images_with_labels"],
            "by_type": Counter({kind: n for kind, n in stats["by_type"].items() if n}),
            "tags": {tag["tag"]: tag["count"] for tag in stats["top_tags"]},
        }
        if got != want:
            wrong.append(f"/api/labels/stats?{query}: {got}, expected {want}")
        _, top = get(client, f"/api/labels/top-tags?limit=100{query}")
        got_top = ({tag["tag"]: tag["count"] for tag in top["results"]}, top["total_labels"], top["unique_tags"])
        if got_top != (want["tags"], sum(want["tags"].values()), len(want["tags"])):
            wrong.append(f"/api/labels/top-tags?{query}: {got_top}, expected {want['tags']}")
    _, distribution = get(client, "/api/labels/distribution?limit=100")
    public = world.public()
    got_albums = {album["album_id"]: (album["image_count"], album["labels_total"]) for album in distribution["albums"]}
    want_albums = {
        pk: (len(world.albums[pk][1] & public), sum(len(world.labels[i]) for i in world.albums[pk][1] & public))
        for pk in world.public_albums()
    }
    histogram_images = sum(bucket["images"] for bucket in distribution["labels_per_image"])
    if (got_albums, distribution["album_count"], histogram_images) != (want_albums, len(want_albums), len(public)):
        wrong.append(f"/api/labels/distribution: {got_albums} / {histogram_images} images, expected {want_albums}")
    return wrong


# Always tried first: labeled images that change flags afterwards, one hidden by a raw queryset
# update (the tally's triggers must notice), one made public by the admin's service, and an
# NSFW-flagged output of the owner's generation job.
FLIPPED_AFTER_LABELING = (
    [
        ImageSpec(
            True,
            False,
            "user",
            "harbor",
            frozenset({(LabelType.TAG, "own"), (LabelType.TAG, "cat")}),
            (True, True),
            False,
            True,
        ),
        ImageSpec(False, False, "user", "forest", frozenset({(LabelType.MANUAL, "cat")}), (True, False), True, False),
        ImageSpec(True, False, "other", "harbor", frozenset({(LabelType.CAPTION, "own")}), None, False, False),
    ],
    [(True, frozenset({0, 1, 2})), (False, frozenset({1}))],
    None,
    False,
)

# Also tried first: the check deciding after labeling. A labeled public image whose check passes
# (its tags count from then on), one whose check fails by a raw update (the tally's triggers must
# notice), and a private one the admin makes public with the autocheck on (hidden until checked).
CHECKED_AFTER_LABELING = (
    [
        ImageSpec(
            True,
            False,
            "other",
            "harbor",
            frozenset({(LabelType.TAG, "own"), (LabelType.TAG, "cat")}),
            None,
            True,
            False,
            NsfwCheck.PENDING,
            NsfwCheck.PASSED,
        ),
        ImageSpec(
            True,
            False,
            "user",
            "forest",
            frozenset({(LabelType.TAG, "cat")}),
            None,
            False,
            True,
            NsfwCheck.PASSED,
            NsfwCheck.FAILED,
        ),
        ImageSpec(False, False, "user", "harbor", frozenset({(LabelType.MANUAL, "dog")}), (True, False), True, False),
    ],
    [(True, frozenset({0, 1, 2}))],
    LabelType.TAG,
    True,
)


@example(world_spec=FLIPPED_AFTER_LABELING)
@example(world_spec=CHECKED_AFTER_LABELING)
@settings(
    max_examples=20,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world_spec=worlds())
def test_non_admins_reach_only_the_images_they_may_see(world_spec, roles):
    spec_images, spec_albums, label_type, autocheck = world_spec
    with transaction.atomic(), override_settings(IMAGINEER_NSFW_AUTOCHECK=autocheck):
        world = build(spec_images, spec_albums, roles.users, autocheck)
        wrong = []
        for reader in READERS:
            client = roles.clients[reader]
            wrong += [f"{reader}: {line}" for line in check_image_paths(client, world, reader)]
            wrong += [f"{reader}: {line}" for line in check_album_paths(client, world, reader)]
            wrong += [f"{reader}: {line}" for line in check_label_analytics(client, world, label_type)]
        transaction.set_rollback(True)
    assert wrong == [], f"{world}\n" + "\n".join(wrong)


def test_a_generation_job_hides_outputs_its_owner_may_no_longer_see(roles):
    """An output an admin flagged NSFW leaves the owner's job, in the list, the detail and a cancel's answer."""
    owner = roles.users["user"]
    kept = make_image(user=owner, is_public=False)
    flagged = make_image(user=owner)
    album_services.set_image_flags([flagged.pk], is_nsfw=True, user=roles.users["admin"])
    model = DiffusionModel.objects.create(name="job-model", source_type=ModelSource.HUB, source="example/job-model")
    job = GenerationJob.objects.create(
        created_by=owner,
        status="running",
        prompt="p",
        model=model,
        scheduler="euler",
        steps=1,
        guidance_scale=1.0,
        width=64,
        height=64,
        seed=1,
    )
    job.images.set([kept, flagged])
    client = roles.clients["user"]

    answers = [
        client.get("/api/generation/jobs/").json()["results"][0],
        client.get(f"/api/generation/jobs/{job.pk}/").json(),
        client.post(f"/api/generation/jobs/{job.pk}/cancel/").json(),
    ]

    shown = [(answer["image_ids"], [image["id"] for image in answer["images"]]) for answer in answers]
    assert shown == [([kept.pk], [kept.pk])] * 3
    admin_view = roles.clients["admin"].get(f"/api/generation/jobs/{job.pk}/").json()
    assert sorted(admin_view["image_ids"]) == sorted([kept.pk, flagged.pk])
