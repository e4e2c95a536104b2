"""Label analytics: the numbers on a hand-computed fixture, visibility, filters, bounds, query counts."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling import analytics
from labeling.analytics import LabelFilters
from labeling.models import Label, LabelerName, LabelerResult, LabelSource, LabelType, label_text_key
from tests.assertions import assert_envelope
from tests.factories import AlbumFactory, UserFactory, make_image

pytestmark = pytest.mark.django_db

STATS = "/api/labels/stats"
TOP_TAGS = "/api/labels/top-tags"
DISTRIBUTION = "/api/labels/distribution"
LAST_RESULT_AT = datetime(2030, 1, 1, tzinfo=UTC)


def _label(image, text: str, label_type: str, source: str = LabelSource.CLAUDE) -> Label:
    return Label.objects.create(image=image, text=text, label_type=label_type, source=source)


def _zeros(**counts: int) -> dict[str, int]:
    return dict.fromkeys(LabelType.values, 0) | counts


@pytest.fixture
def corpus(db):
    """The hand-computed fixture every literal number below comes from.

    Album A (public), 4 images:
      i1 public:        caption "a cat on a sofa"; tags cat, sofa, indoor                 (4 labels)
      i2 public:        manual "my favourite" (source manual); tag cat                    (2)
      i3 public, NSFW:  tags nude, cat                                                    (2)
      i4 public:        no labels                                                         (0)
    Outside album A:
      i5 public:        tag dog; alt_text "a dog"                                         (2)
      i6 private:       tags secret, cat; the only image of album B (private)             (2)
    One LabelerResult on i1, labeled_at 2030-01-01 (later than every label's created_at).

    Admins see i1..i6 (12 labels). Anonymous and plain users see i1, i2, i4, i5 (8 labels):
    i3 is NSFW and i6 is private and not theirs.
    """
    album_a = AlbumFactory(name="A", is_public=True)
    album_b = AlbumFactory(name="B", is_public=False)
    images = {
        "i1": make_image(album=album_a),
        "i2": make_image(album=album_a),
        "i3": make_image(album=album_a, is_nsfw=True),
        "i4": make_image(album=album_a),
        "i5": make_image(),
        "i6": make_image(album=album_b, is_public=False),
    }
    i1, i2, i3, _, i5, i6 = images.values()
    _label(i1, "a cat on a sofa", LabelType.CAPTION)
    for tag in ("cat", "sofa", "indoor"):
        _label(i1, tag, LabelType.TAG)
    _label(i2, "my favourite", LabelType.MANUAL, LabelSource.MANUAL)
    _label(i2, "cat", LabelType.TAG)
    _label(i3, "nude", LabelType.TAG, LabelSource.NUDENET)
    _label(i3, "cat", LabelType.TAG)
    _label(i5, "dog", LabelType.TAG)
    _label(i5, "a dog", LabelType.ALT_TEXT, LabelSource.HTML_METADATA)
    _label(i6, "secret", LabelType.TAG)
    _label(i6, "cat", LabelType.TAG)
    LabelerResult.objects.create(image=i1, labeler=LabelerName.CLAUDE, labeled_at=LAST_RESULT_AT)
    return {"album_a": album_a, "album_b": album_b, **images}


# --- album analytics (admin) ---------------------------------------------------------------


def test_album_analytics_counts_every_image_of_the_album(admin_client_api, corpus):
    response = admin_client_api.get(f"/api/albums/{corpus['album_a'].pk}/labeling/analytics")
    assert response.status_code == 200, response.content
    # 8 labels on 4 images (i1 4, i2 2, i3 2, i4 0). Tag-type labels: tags cat x3, sofa, indoor,
    # nude + manual "my favourite" = 7, so cat is 3/7 = 42.86 % and each other 1/7 = 14.29 %.
    assert response.json() == {
        "album_id": corpus["album_a"].pk,
        "image_count": 4,
        "labels_total": 8,
        "labels_by_type": _zeros(caption=1, tag=6, manual=1),
        "images_with_labels": 3,
        "images_with_manual_labels": 1,  # i2
        "images_with_captions": 1,  # i1
        "unlabeled_images": 1,  # i4
        "average_labels_per_image": 2.0,  # 8 / 4
        "coverage": {"labels_percent": 75.0, "manual_percent": 25.0, "caption_percent": 25.0},
        "top_tags": [
            {"tag": "cat", "count": 3, "percentage": 42.86},
            {"tag": "indoor", "count": 1, "percentage": 14.29},
            {"tag": "my favourite", "count": 1, "percentage": 14.29},
            {"tag": "nude", "count": 1, "percentage": 14.29},
            {"tag": "sofa", "count": 1, "percentage": 14.29},
        ],
        "nsfw_count": 1,  # i3
        "last_labeled_at": "2030-01-01T00:00:00Z",  # the LabelerResult, later than every label
    }


def test_album_analytics_last_labeled_at_falls_back_to_labels(corpus):
    LabelerResult.objects.all().delete()
    newest = Label.objects.filter(image__album_links__album=corpus["album_a"]).latest("created_at")
    assert analytics.album_labeling_analytics(corpus["album_a"].pk)["last_labeled_at"] == newest.created_at


def test_album_analytics_of_an_empty_album_is_zeros(admin_client_api):
    album = AlbumFactory()
    response = admin_client_api.get(f"/api/albums/{album.pk}/labeling/analytics")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "album_id": album.pk,
        "image_count": 0,
        "labels_total": 0,
        "labels_by_type": _zeros(),
        "images_with_labels": 0,
        "images_with_manual_labels": 0,
        "images_with_captions": 0,
        "unlabeled_images": 0,
        "average_labels_per_image": 0.0,
        "coverage": {"labels_percent": 0.0, "manual_percent": 0.0, "caption_percent": 0.0},
        "top_tags": [],
        "nsfw_count": 0,
        "last_labeled_at": None,
    }


def test_album_analytics_of_an_unknown_album_is_404(admin_client_api):
    assert_envelope(admin_client_api.get("/api/albums/999999/labeling/analytics"), 404, "not_found")


def test_album_analytics_is_admin_only(api_client, user_client_api, corpus):
    url = f"/api/albums/{corpus['album_a'].pk}/labeling/analytics"
    assert_envelope(api_client.get(url), 401, "not_authenticated")
    assert_envelope(user_client_api.get(url), 403, "permission_denied")


# --- /api/labels/stats -------------------------------------------------------------------


def test_stats_for_admin_cover_everything(admin_client_api, corpus):
    response = admin_client_api.get(STATS)
    assert response.status_code == 200, response.content
    # 12 labels on 6 images; 9 distinct texts (a cat on a sofa, cat, sofa, indoor, my favourite,
    # nude, dog, a dog, secret); 5 labeled images (not i4). Tag-type labels: 9 tags + 1 manual =
    # 10; cat is on i1, i2, i3, i6: 4/10 = 40 %.
    assert response.json() == {
        "total_labels": 12,
        "unique_labels": 9,
        "images_total": 6,
        "images_with_labels": 5,
        "avg_labels_per_image": 2.0,  # 12 / 6
        "min_labels_per_image": 0,  # i4
        "max_labels_per_image": 4,  # i1
        "coverage_percent": 83.33,  # 5 / 6
        "top_tags": [
            {"tag": "cat", "count": 4, "percentage": 40.0},
            {"tag": "dog", "count": 1, "percentage": 10.0},
            {"tag": "indoor", "count": 1, "percentage": 10.0},
            {"tag": "my favourite", "count": 1, "percentage": 10.0},
            {"tag": "nude", "count": 1, "percentage": 10.0},
            {"tag": "secret", "count": 1, "percentage": 10.0},
            {"tag": "sofa", "count": 1, "percentage": 10.0},
        ],
        "by_type": _zeros(caption=1, tag=9, manual=1, alt_text=1),
    }


# Anonymous and plain users: i1, i2, i4, i5 only. 8 labels; 7 distinct texts (a cat on a sofa,
# cat, sofa, indoor, my favourite, dog, a dog); tag-type labels 5 tags + 1 manual = 6, cat 2/6.
PUBLIC_STATS = {
    "total_labels": 8,
    "unique_labels": 7,
    "images_total": 4,
    "images_with_labels": 3,
    "avg_labels_per_image": 2.0,
    "min_labels_per_image": 0,
    "max_labels_per_image": 4,
    "coverage_percent": 75.0,
    "top_tags": [
        {"tag": "cat", "count": 2, "percentage": 33.33},
        {"tag": "dog", "count": 1, "percentage": 16.67},
        {"tag": "indoor", "count": 1, "percentage": 16.67},
        {"tag": "my favourite", "count": 1, "percentage": 16.67},
        {"tag": "sofa", "count": 1, "percentage": 16.67},
    ],
    "by_type": _zeros(caption=1, tag=5, manual=1, alt_text=1),
}


@pytest.mark.parametrize("who", ["api_client", "user_client_api"])
def test_stats_for_non_admins_leave_out_nsfw_and_private_images(request, corpus, who):
    response = request.getfixturevalue(who).get(STATS)
    assert response.status_code == 200, response.content
    assert response.json() == PUBLIC_STATS


def test_stats_when_every_image_is_labeled_report_the_real_minimum(admin_client_api, corpus):
    corpus["i4"].delete()
    body = admin_client_api.get(STATS).json()
    assert (body["images_total"], body["images_with_labels"], body["min_labels_per_image"]) == (5, 5, 2)


def test_stats_filtered_by_label_type(admin_client_api, corpus):
    body = admin_client_api.get(STATS, {"label_type": "tag"}).json()
    # 9 tags on i1 (3), i2, i3 (2), i5, i6 (2); distinct: cat, sofa, indoor, nude, dog, secret.
    assert body == {
        "total_labels": 9,
        "unique_labels": 6,
        "images_total": 6,
        "images_with_labels": 5,
        "avg_labels_per_image": 1.5,
        "min_labels_per_image": 0,
        "max_labels_per_image": 3,
        "coverage_percent": 83.33,
        "top_tags": [
            {"tag": "cat", "count": 4, "percentage": 44.44},
            {"tag": "dog", "count": 1, "percentage": 11.11},
            {"tag": "indoor", "count": 1, "percentage": 11.11},
            {"tag": "nude", "count": 1, "percentage": 11.11},
            {"tag": "secret", "count": 1, "percentage": 11.11},
            {"tag": "sofa", "count": 1, "percentage": 11.11},
        ],
        "by_type": _zeros(tag=9),
    }


def test_stats_of_a_type_that_is_not_a_tag_have_no_top_tags(admin_client_api, corpus):
    body = admin_client_api.get(STATS, {"label_type": "caption"}).json()
    assert (body["total_labels"], body["unique_labels"], body["top_tags"]) == (1, 1, [])


def test_stats_filtered_by_album(api_client, corpus):
    body = api_client.get(STATS, {"album": corpus["album_a"].pk}).json()
    # Album A as the public sees it: i1, i2, i4 (i3 is NSFW). 6 labels; tag-type: cat x2, sofa,
    # indoor, my favourite = 5.
    assert body == {
        "total_labels": 6,
        "unique_labels": 5,
        "images_total": 3,
        "images_with_labels": 2,
        "avg_labels_per_image": 2.0,
        "min_labels_per_image": 0,
        "max_labels_per_image": 4,
        "coverage_percent": 66.67,
        "top_tags": [
            {"tag": "cat", "count": 2, "percentage": 40.0},
            {"tag": "indoor", "count": 1, "percentage": 20.0},
            {"tag": "my favourite", "count": 1, "percentage": 20.0},
            {"tag": "sofa", "count": 1, "percentage": 20.0},
        ],
        "by_type": _zeros(caption=1, tag=4, manual=1),
    }


def test_stats_limit_cuts_top_tags(admin_client_api, corpus):
    tags = admin_client_api.get(STATS, {"limit": 2}).json()["top_tags"]
    assert [t["tag"] for t in tags] == ["cat", "dog"]


# --- /api/labels/top-tags ------------------------------------------------------------------


def test_top_tags_for_admin(admin_client_api, corpus):
    response = admin_client_api.get(TOP_TAGS)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "total_labels": 10,  # 9 tags + 1 manual
        "unique_tags": 7,
        "limit": 10,
        "offset": 0,
        "results": [
            {"tag": "cat", "count": 4, "percentage": 40.0},
            {"tag": "dog", "count": 1, "percentage": 10.0},
            {"tag": "indoor", "count": 1, "percentage": 10.0},
            {"tag": "my favourite", "count": 1, "percentage": 10.0},
            {"tag": "nude", "count": 1, "percentage": 10.0},
            {"tag": "secret", "count": 1, "percentage": 10.0},
            {"tag": "sofa", "count": 1, "percentage": 10.0},
        ],
    }


@pytest.mark.parametrize("who", ["api_client", "user_client_api"])
def test_top_tags_for_non_admins_never_show_nsfw_or_private_tags(request, corpus, who):
    body = request.getfixturevalue(who).get(TOP_TAGS).json()
    assert body == {"total_labels": 6, "unique_tags": 5, "limit": 10, "offset": 0, "results": PUBLIC_STATS["top_tags"]}


def test_top_tags_paginate_by_limit_and_offset(admin_client_api, corpus):
    body = admin_client_api.get(TOP_TAGS, {"limit": 2, "offset": 1}).json()
    assert [r["tag"] for r in body["results"]] == ["dog", "indoor"]
    assert (body["total_labels"], body["unique_tags"], body["limit"], body["offset"]) == (10, 7, 2, 1)
    last = admin_client_api.get(TOP_TAGS, {"limit": 2, "offset": 6}).json()
    assert [r["tag"] for r in last["results"]] == ["sofa"]


def test_top_tags_past_the_end_keep_their_totals(admin_client_api, corpus):
    body = admin_client_api.get(TOP_TAGS, {"offset": 7}).json()
    assert (body["results"], body["total_labels"], body["unique_tags"]) == ([], 10, 7)


def test_top_tags_filtered_by_label_type_manual(admin_client_api, corpus):
    body = admin_client_api.get(TOP_TAGS, {"label_type": "manual"}).json()
    assert body["results"] == [{"tag": "my favourite", "count": 1, "percentage": 100.0}]
    assert (body["total_labels"], body["unique_tags"]) == (1, 1)


def test_top_tags_tie_break_is_byte_order_on_every_backend(admin_client_api):
    image = make_image()
    for tag in ("b", "B", "a", "A", "_x"):
        _label(image, tag, LabelType.TAG)
    results = admin_client_api.get(TOP_TAGS).json()["results"]
    assert [r["tag"] for r in results] == ["A", "B", "_x", "a", "b"]


def test_an_owners_private_images_stay_out_of_their_aggregates(corpus, plain_user, user_client_api):
    # The aggregates cover public, non-NSFW images for every non-admin: the same answer for all of
    # them, which is what lets one tally serve them. Their own images are theirs to browse, not to count.
    own = make_image(is_public=False, user=plain_user)
    _label(own, "my private tag", LabelType.TAG)
    assert user_client_api.get(STATS).json() == PUBLIC_STATS
    tags = {r["tag"] for r in user_client_api.get(TOP_TAGS).json()["results"]}
    assert "cat" in tags and "my private tag" not in tags  # the public tags are counted, the private one not


# --- /api/labels/distribution --------------------------------------------------------------


def test_distribution_for_admin(admin_client_api, corpus):
    response = admin_client_api.get(DISTRIBUTION)
    assert response.status_code == 200, response.content
    # Labels per image: i1 4, i2 2, i3 2, i4 0, i5 2, i6 2.
    assert response.json() == {
        "by_type": _zeros(caption=1, tag=9, manual=1, alt_text=1),
        "labels_per_image": [
            {"labels": 0, "images": 1},
            {"labels": 1, "images": 0},
            {"labels": 2, "images": 4},
            {"labels": 3, "images": 0},
            {"labels": 4, "images": 1},
        ],
        "albums": [
            {
                "album_id": corpus["album_a"].pk,
                "name": "A",
                "image_count": 4,
                "images_with_labels": 3,
                "labels_total": 8,
                "coverage_percent": 75.0,
            },
            {
                "album_id": corpus["album_b"].pk,
                "name": "B",
                "image_count": 1,
                "images_with_labels": 1,
                "labels_total": 2,
                "coverage_percent": 100.0,
            },
        ],
        "album_count": 2,
    }


@pytest.mark.parametrize("who", ["api_client", "user_client_api"])
def test_distribution_for_non_admins(request, corpus, who):
    body = request.getfixturevalue(who).get(DISTRIBUTION).json()
    # i1 4, i2 2, i4 0, i5 2; album B is private; album A without NSFW i3: i1, i2, i4.
    assert body == {
        "by_type": PUBLIC_STATS["by_type"],
        "labels_per_image": [
            {"labels": 0, "images": 1},
            {"labels": 1, "images": 0},
            {"labels": 2, "images": 2},
            {"labels": 3, "images": 0},
            {"labels": 4, "images": 1},
        ],
        "albums": [
            {
                "album_id": corpus["album_a"].pk,
                "name": "A",
                "image_count": 3,
                "images_with_labels": 2,
                "labels_total": 6,
                "coverage_percent": 66.67,
            }
        ],
        "album_count": 1,
    }


def test_distribution_albums_paginate_in_id_order(admin_client_api, corpus):
    extra = [AlbumFactory(name=f"extra {n}") for n in range(3)]
    body = admin_client_api.get(DISTRIBUTION, {"limit": 2, "offset": 1}).json()
    assert [a["album_id"] for a in body["albums"]] == [corpus["album_b"].pk, extra[0].pk]
    assert body["album_count"] == 5
    assert body["albums"][1] == {
        "album_id": extra[0].pk,
        "name": "extra 0",
        "image_count": 0,
        "images_with_labels": 0,
        "labels_total": 0,
        "coverage_percent": 0.0,
    }


def test_distribution_filtered_by_album_and_type(admin_client_api, corpus):
    body = admin_client_api.get(DISTRIBUTION, {"album": corpus["album_b"].pk, "label_type": "tag"}).json()
    assert body == {
        "by_type": _zeros(tag=2),
        "labels_per_image": [{"labels": 0, "images": 0}, {"labels": 1, "images": 0}, {"labels": 2, "images": 1}],
        "albums": [
            {
                "album_id": corpus["album_b"].pk,
                "name": "B",
                "image_count": 1,
                "images_with_labels": 1,
                "labels_total": 2,
                "coverage_percent": 100.0,
            }
        ],
        "album_count": 1,
    }


def test_distribution_folds_twenty_labels_and_more_into_one_bucket(admin_client_api):
    many, few = make_image(), make_image()
    texts = [f"tag {n}" for n in range(25)]
    Label.objects.bulk_create(
        Label(image=many, text=t, text_key=label_text_key(t), label_type=LabelType.TAG) for t in texts
    )
    _label(few, "tag 0", LabelType.TAG)
    buckets = admin_client_api.get(DISTRIBUTION).json()["labels_per_image"]
    assert len(buckets) == 21
    assert buckets[0] == {"labels": 0, "images": 0}
    assert buckets[1] == {"labels": 1, "images": 1}
    assert buckets[19] == {"labels": 19, "images": 0}
    assert buckets[20] == {"labels": "20+", "images": 1}


def test_distribution_with_no_images_is_one_empty_bucket(api_client):
    body = api_client.get(DISTRIBUTION).json()
    assert body == {
        "by_type": _zeros(),
        "labels_per_image": [{"labels": 0, "images": 0}],
        "albums": [],
        "album_count": 0,
    }


# --- filters and bounds --------------------------------------------------------------------


@pytest.mark.parametrize("url", [STATS, TOP_TAGS, DISTRIBUTION])
@pytest.mark.parametrize("value", ["0", "101", "x", "-1", "1.5"])
def test_limit_out_of_bounds_is_a_400_naming_the_range(api_client, url, value):
    error = assert_envelope(api_client.get(url, {"limit": value}), 400, "validation_error")
    assert "1 to 100" in error["message"]
    assert "limit" in error["details"]["fields"]


@pytest.mark.parametrize("url", [STATS, TOP_TAGS, DISTRIBUTION])
@pytest.mark.parametrize("value", ["1", "100"])
def test_limit_bounds_are_accepted(api_client, corpus, url, value):
    assert api_client.get(url, {"limit": value}).status_code == 200


@pytest.mark.parametrize("value", ["-1", "1000001", "y"])
def test_offset_out_of_bounds_is_a_400(api_client, value):
    error = assert_envelope(api_client.get(TOP_TAGS, {"offset": value}), 400, "validation_error")
    assert "0 to 1000000" in error["message"]


def test_largest_offset_is_accepted(api_client, corpus):
    body = api_client.get(TOP_TAGS, {"offset": "1000000"}).json()
    assert (body["results"], body["total_labels"]) == ([], 6)


@pytest.mark.parametrize("url", [STATS, TOP_TAGS, DISTRIBUTION])
def test_unknown_label_type_is_a_400_listing_the_types(api_client, url):
    error = assert_envelope(api_client.get(url, {"label_type": "colour"}), 400, "validation_error")
    assert "caption, tag, manual" in error["message"]


def test_unknown_query_parameters_are_ignored(api_client, corpus):
    assert api_client.get(STATS, {"colour": "red"}).json() == PUBLIC_STATS


@pytest.mark.parametrize("url", [STATS, TOP_TAGS, DISTRIBUTION])
@pytest.mark.parametrize("who", ["api_client", "user_client_api"])
def test_a_hidden_album_is_refused_like_a_missing_one(request, corpus, url, who):
    client = request.getfixturevalue(who)
    private = assert_envelope(client.get(url, {"album": corpus["album_b"].pk}), 400, "validation_error")
    missing = assert_envelope(client.get(url, {"album": 999999}), 400, "validation_error")
    # Same words for both, but for the id itself: the answer does not tell whether B exists.
    assert private["message"].replace(str(corpus["album_b"].pk), "ID") == missing["message"].replace("999999", "ID")
    assert "album" in private["details"]["fields"]


def test_admins_may_filter_on_a_private_album(admin_client_api, corpus):
    body = admin_client_api.get(STATS, {"album": corpus["album_b"].pk}).json()
    assert (body["images_total"], body["total_labels"], [t["tag"] for t in body["top_tags"]]) == (
        1,
        2,
        ["cat", "secret"],
    )


@pytest.mark.parametrize("value", ["abc", str(2**63), "1" * 30])
def test_non_integer_or_huge_album_is_a_400(api_client, value):
    error = assert_envelope(api_client.get(STATS, {"album": value}), 400, "validation_error")
    assert "album id" in error["message"]


# --- the functions directly ----------------------------------------------------------------


def test_percentages_round_half_up_from_integers():
    assert analytics._percent(1, 8) == 12.5
    assert analytics._percent(1, 3) == 33.33
    assert analytics._percent(2, 3) == 66.67
    assert analytics._percent(1, 800) == 0.13  # 0.125 exactly: half up, not float rounding's 0.12
    assert analytics._percent(5, 0) == 0.0
    assert analytics._ratio(7, 3) == 2.33


def test_functions_answer_zeros_without_any_data(db):
    stats = analytics.label_stats(None, LabelFilters())
    assert stats["total_labels"] == stats["unique_labels"] == stats["images_total"] == 0
    assert stats["top_tags"] == [] and stats["by_type"] == _zeros()
    assert analytics.top_tags(None, LabelFilters(offset=5)) == {
        "total_labels": 0,
        "unique_tags": 0,
        "limit": 10,
        "offset": 5,
        "results": [],
    }


# --- query counts do not grow with the data ------------------------------------------------


def _bigger_corpus() -> None:
    """40 images in 8 albums (some private, some NSFW) with 1..25 labels each, of every type."""
    albums = [AlbumFactory(is_public=n % 3 != 0) for n in range(8)]
    owner = UserFactory()
    rows = []
    for n in range(40):
        image = make_image(
            album=albums[n % 8], is_nsfw=n % 7 == 0, is_public=n % 5 != 0, user=owner if n % 4 == 0 else None
        )
        types = LabelType.values
        for k in range(1 + n % 25):
            text = f"text {k % 9}" if k % 2 else f"caption {n}-{k}"
            rows.append(Label(image=image, text=text, text_key=label_text_key(text), label_type=types[k % len(types)]))
        if n % 3 == 0:
            LabelerResult.objects.create(image=image, labeler=LabelerName.CLAUDE, labeled_at=LAST_RESULT_AT)
    Label.objects.bulk_create(rows, ignore_conflicts=True)


def _query_counts(clients: dict, album_id: int) -> dict[tuple[str, str], int]:
    urls = [
        f"{STATS}?album={album_id}",
        STATS,
        f"{STATS}?label_type=tag",
        TOP_TAGS,
        f"{TOP_TAGS}?limit=3&offset=1",
        DISTRIBUTION,
        f"{DISTRIBUTION}?album={album_id}&label_type=tag&limit=100",
    ]
    counts = {}
    for who, client in clients.items():
        for url in urls + ([f"/api/albums/{album_id}/labeling/analytics"] if who == "admin" else []):
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            assert response.status_code == 200, (url, response.content)
            counts[(who, url)] = len(captured)
    return counts


def test_query_counts_do_not_grow_with_the_data(api_client, admin_client_api, user_client_api):
    album = AlbumFactory(is_public=True)
    for n in range(3):
        image = make_image(album=album)
        _label(image, f"tag {n}", LabelType.TAG)
    clients = {"admin": admin_client_api, "anonymous": api_client, "user": user_client_api}
    small = _query_counts(clients, album.pk)

    _bigger_corpus()
    for n in range(10):
        image = make_image(album=album, is_nsfw=n == 0)
        for k in range(n + 1):
            _label(image, f"tag {k}", LabelType.TAG if k % 2 else LabelType.MANUAL)
    assert Label.objects.count() > 300
    assert _query_counts(clients, album.pk) == small
