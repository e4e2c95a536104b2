"""Label analytics: counts, coverage, top tags and distributions, computed in the database.

Every figure comes from a small, fixed number of aggregate queries, so the query count does not
grow with the number of labels, images or albums; Python only walks bounded results (a page of
tags or albums, ≤ 21 histogram buckets, the six label types). Percentages and averages are
computed here from the integer counts the database returns, so SQLite and PostgreSQL answer the
same numbers to the last digit.

Two sources carry the /api/labels/* figures (docs/PERFORMANCE.md has their cost at 1M labels):
- per image (`_per_image`): labels in scope GROUP BY image, aggregates over the groups: totals,
  by type, min/max, histogram (plus a count of the images in scope);
- per text: without an `album` filter from the maintained tally (`_tally_counts`, labeling/tally.py:
  one row per text and scope, compacted first), which answers what grouping every label by text
  would (`_text_counts`), without reading the labels; with one, that live GROUP BY text over the
  album's labels (small), a page by count, with the number of texts and the counts' total.

Scope: admins aggregate over everything; everyone else (anonymous or signed in) over public,
non-NSFW images cleared by the NSFW check only, the same for every caller, so no tag text or count of a private or NSFW
image ever reaches them (a signed-in user's own private images are theirs to browse, not part
of these aggregates) and the tally can hold one hidden count per text. The `album` filter is
checked against `Album.objects.visible_to(user)` by the caller (the API's query serializer).

One idea, one module (about 500 lines): the album view and the /api/labels/* figures are the
same aggregates over one scope, built from the same helpers (scoping, per-text and per-image
counts, rounding), so splitting them would only move those helpers into a third module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TypedDict

from django.db import connections
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Window,
)
from django.db.models.functions import Collate

from albums.models import Album, AlbumImage, Image, public_images_q, visible_images_q
from imagineer.core.errors import NotFoundError
from labeling.models import TAG_TYPES, Label, LabelerResult, LabelSource, LabelTextTally, LabelType
from labeling.tally import compact_label_tallies

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_OFFSET = 1_000_000
# Images with this many labels or more share the histogram's last bucket ("20+"), which keeps the
# histogram at most 21 buckets however many labels one image collects.
HISTOGRAM_CAP = 20
ALBUM_TOP_TAGS = 10

# Tie-break for tags of equal count: byte order of the text, the same on both backends (a
# PostgreSQL database created with a natural-language collation would otherwise order them
# differently from SQLite's BINARY).
_BYTE_ORDER_COLLATION = {"postgresql": "C", "sqlite": "BINARY"}


class TagCount(TypedDict):
    tag: str
    count: int
    percentage: float


class HistogramBucket(TypedDict):
    labels: int | str  # k, or "20+" for the capped last bucket
    images: int


class AlbumCoverage(TypedDict):
    album_id: int
    name: str
    image_count: int
    images_with_labels: int
    labels_total: int
    coverage_percent: float


class AlbumLabelingAnalytics(TypedDict):
    album_id: int
    image_count: int
    labels_total: int
    labels_by_type: dict[str, int]
    images_with_labels: int
    images_with_manual_labels: int
    images_with_captions: int
    unlabeled_images: int
    average_labels_per_image: float
    coverage: dict[str, float]
    top_tags: list[TagCount]
    nsfw_count: int
    last_labeled_at: datetime | None


class LabelStats(TypedDict):
    total_labels: int
    unique_labels: int
    images_total: int
    images_with_labels: int
    avg_labels_per_image: float
    min_labels_per_image: int
    max_labels_per_image: int
    coverage_percent: float
    top_tags: list[TagCount]
    by_type: dict[str, int]


class TopTags(TypedDict):
    total_labels: int
    unique_tags: int
    limit: int
    offset: int
    results: list[TagCount]


class LabelDistribution(TypedDict):
    by_type: dict[str, int]
    labels_per_image: list[HistogramBucket]
    albums: list[AlbumCoverage]
    album_count: int


@dataclass(frozen=True)
class LabelFilters:
    """The filters of the /api/labels/* endpoints, already validated (see the query serializer)."""

    label_type: str | None = None
    album_id: int | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


# --- small helpers ---------------------------------------------------------------------------


def _percent(part: int, whole: int) -> float:
    """part / whole * 100 to 2 dp, half up; 0.0 for an empty whole."""
    return _ratio(part * 100, whole)


def _ratio(part: int, whole: int) -> float:
    if not whole:
        return 0.0
    # Decimal from integers: exact, so 1 in 800 is 0.13 % (half up) on every backend, not 0.12 by float rounding.
    return float((Decimal(part) / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _scalar_subquery(queryset: QuerySet, function: str, field: str, output_field) -> Subquery:
    """`(SELECT function(field) FROM ... WHERE <correlated>)`: exactly one row, no GROUP BY."""
    # Func, not Count/Max: an aggregate class would make Django GROUP BY the inner query, which
    # then answers no row (NULL, not 0) for an album without images.
    value = Func(F(field), function=function, output_field=output_field)
    return Subquery(queryset.order_by().annotate(_value=value).values("_value"), output_field=output_field)


def _count_subquery(queryset: QuerySet) -> Subquery:
    return _scalar_subquery(queryset, "COUNT", "pk", IntegerField())


class _SumOverGroups(Func):
    """SUM(<aggregate>) OVER (): the total of a per-group count over all groups, in the same query."""

    function = "SUM"
    window_compatible = True


# What non-admins' aggregates cover: the public, non-NSFW images the NSFW check cleared
# (albums.models.visible_images_q without its "own images" part, which would make every signed-in
# user a scope of their own).
PUBLIC_IMAGES = public_images_q()


def _sees_everything(user) -> bool:
    return visible_images_q(user) is None


def _scoped_images(user, album_id: int | None) -> QuerySet[Image]:
    images = Image.objects.order_by()
    if not _sees_everything(user):
        images = images.filter(PUBLIC_IMAGES)
    if album_id is not None:
        images = images.filter(album_links__album_id=album_id)  # (album, image) is unique: no duplicates
    return images


def _scoped_labels(user, album_id: int | None, label_type: str | None) -> QuerySet[Label]:
    labels = Label.objects.order_by()
    if not _sees_everything(user):
        # NOT EXISTS (a hidden image with this id) rather than a join on the visible ones: an anti-join
        # against the (usually few) hidden images keeps the labels in index order and probes a small
        # hash, where a join probes every label against every visible image. Same rows either way:
        # every label has an image.
        hidden = Image.objects.exclude(PUBLIC_IMAGES).filter(pk=OuterRef("image_id"))
        labels = labels.filter(~Exists(hidden))
    if album_id is not None:
        labels = labels.filter(image_id__in=AlbumImage.objects.filter(album_id=album_id).values("image_id"))
    if label_type is not None:
        labels = labels.filter(label_type=label_type)
    return labels


class _TextCounts(TypedDict):
    rows: list[tuple[str, int]]  # one page of (text, count), count desc then text in byte order
    groups: int  # distinct texts
    counted: int  # sum of the counts over all texts


def _text_counts(labels: QuerySet[Label], *, counted: Q | None, limit: int, offset: int) -> _TextCounts:
    """GROUP BY text in one query: a page of texts by count, the number of texts and the counts' sum.

    `counted` restricts what is counted per text (e.g. tag types only) while every text still
    counts as a group. Window functions give the totals from the same scan as the page; only a page
    past the end (no row to carry them) costs a second query.
    """
    collation = _BYTE_ORDER_COLLATION.get(connections[labels.db].vendor)
    # Group by the collated text itself, so the tie-break needs no second GROUP BY key.
    text = Collate("text", collation) if collation else F("text")
    count = Count("id", filter=counted)
    rows = list(
        labels.values(text_=text)
        .annotate(
            count=count,
            groups=Window(Count("*")),
            counted=Window(_SumOverGroups(count, output_field=IntegerField())),
        )
        .order_by("-count", "text_")
        .values_list("text_", "count", "groups", "counted")[offset : offset + limit]
    )
    if rows:
        # SUM(bigint) is numeric on PostgreSQL: back to int.
        groups, total = rows[0][2], int(rows[0][3])
    elif offset:
        summary = labels.values(text_=text).annotate(count=count).aggregate(groups=Count("text_"), total=Sum("count"))
        groups, total = summary["groups"], int(summary["total"] or 0)
    else:
        groups, total = 0, 0
    return {"rows": [(text, count) for text, count, _, _ in rows], "groups": groups, "counted": total}


def _tag_counts(rows: list[tuple[str, int]], total: int) -> list[TagCount]:
    # A text counted zero times has no tag-type label (it is only a caption, say): not a tag.
    return [{"tag": text, "count": count, "percentage": _percent(count, total)} for text, count in rows if count]


def _tally_counts(user, *, groups: str, counted: str | None, limit: int, offset: int) -> _TextCounts:
    """What `_text_counts` answers for all labels in scope, from LabelTextTally: the number of texts
    in scope `groups`, and a page of texts by count in scope `counted` (None: no page) with the
    counts' total. The compaction first (5 statements on PostgreSQL, 8 on SQLite, however much is
    pending), then two queries.
    """
    compact_label_tallies(LabelTextTally.objects.db)
    # A non-admin counts the labels on public, non-NSFW images: the tally's total minus hidden.
    count = F("total") if _sees_everything(user) else F("total") - F("hidden")
    tally = LabelTextTally.objects.order_by().annotate(n=count).filter(n__gt=0)
    scopes = {groups} if counted is None else {groups, counted}
    # Counting `scope`, not `id`: a column of the (scope, total, hidden) index, read from it alone.
    summary = tally.filter(scope__in=scopes).aggregate(
        groups=Count("scope", filter=Q(scope=groups)), counted=Sum("n", filter=Q(scope=counted))
    )
    rows = []
    if counted is not None:
        collation = _BYTE_ORDER_COLLATION.get(connections[tally.db].vendor)
        text = Collate("text", collation) if collation else F("text")
        rows = list(tally.filter(scope=counted).order_by("-n", text).values_list("text", "n")[offset : offset + limit])
    # SUM(bigint) is numeric on PostgreSQL: back to int.
    return {"rows": rows, "groups": summary["groups"], "counted": int(summary["counted"] or 0)}


class _PerImage(TypedDict):
    images: int  # images in scope
    labeled: int  # of which with at least one label
    labels: int
    fewest: int
    most: int
    by_type: dict[str, int]
    histogram: dict[int, int]  # k (0..HISTOGRAM_CAP, the cap meaning "or more") → images


def _per_image(user, album_id: int | None, label_type: str | None, *, histogram: bool) -> _PerImage:
    """Labels per image and by type, in two queries: the images in scope (a count), and the labels
    in scope grouped by image with aggregates over those groups (totals, by type, min/max, histogram).

    n counts `label_type`, not `id`: a column of the (image, label_type) index, so PostgreSQL reads
    the labels from that index alone, in image order, and groups them without hashing. An image
    without labels is in no group: it counts in `images`, in the histogram's first bucket and makes
    the minimum 0. The histogram's conditional counts are added only when asked for.
    """
    images = _scoped_images(user, album_id).count()
    grouped = _scoped_labels(user, album_id, label_type).values("image_id").annotate(n=Count("label_type"))
    type_sums = {}
    if label_type is None:
        # Per-type counts inside the per-image groups: one pass over the labels serves both.
        grouped = grouped.annotate(
            **{f"n_{value}": Count("label_type", filter=Q(label_type=value)) for value in LabelType.values}
        )
        type_sums = {f"t_{value}": Sum(f"n_{value}") for value in LabelType.values}
    buckets = {}
    if histogram:
        buckets = {f"k{k}": Count("image_id", filter=Q(n=k)) for k in range(1, HISTOGRAM_CAP)}
        buckets[f"k{HISTOGRAM_CAP}"] = Count("image_id", filter=Q(n__gte=HISTOGRAM_CAP))
    row = grouped.aggregate(
        labeled=Count("image_id"), labels=Sum("n"), fewest=Min("n"), most=Max("n"), **buckets, **type_sums
    )
    labeled = row["labeled"]
    labels = int(row["labels"] or 0)  # SUM(bigint) is numeric on PostgreSQL
    by_type = dict.fromkeys(LabelType.values, 0)
    if label_type is None:
        by_type.update({value: int(row[f"t_{value}"] or 0) for value in LabelType.values})
    else:
        by_type[label_type] = labels
    return {
        "images": images,
        "labeled": labeled,
        "labels": labels,
        "fewest": (row["fewest"] or 0) if labeled == images else 0,
        "most": row["most"] or 0,
        "by_type": by_type,
        "histogram": {0: images - labeled} | {k: row[f"k{k}"] for k in range(1, HISTOGRAM_CAP + 1)}
        if histogram
        else {},
    }


# --- album analytics (admin) -----------------------------------------------------------------


def album_labeling_analytics(album_id: int) -> AlbumLabelingAnalytics:
    """Labeling progress of one album over all its images (for admins: NSFW and private included).

    Raises NotFoundError for an unknown album. Three queries whatever the album's size.
    """
    in_album = AlbumImage.objects.filter(album=OuterRef("pk"))
    album = (
        Album.objects.filter(pk=album_id)
        .annotate(
            image_count=_count_subquery(in_album),
            nsfw_count=_count_subquery(in_album.filter(image__is_nsfw=True)),
            last_result_at=_scalar_subquery(
                LabelerResult.objects.filter(image__album_links__album=OuterRef("pk")),
                "MAX",
                "labeled_at",
                DateTimeField(),
            ),
        )
        .order_by()
        .values("image_count", "nsfw_count", "last_result_at")
        .first()
    )
    if album is None:
        raise NotFoundError("No album with this id.", code="not_found")

    # Admins only: every image of the album, so no visibility condition.
    labels = Label.objects.order_by().filter(
        image_id__in=AlbumImage.objects.filter(album_id=album_id).values("image_id")
    )
    per_type = {f"type_{value}": Count("id", filter=Q(label_type=value)) for value in LabelType.values}
    totals = labels.aggregate(
        labels_total=Count("id"),
        images_with_labels=Count("image_id", distinct=True),
        images_with_manual_labels=Count("image_id", distinct=True, filter=Q(source=LabelSource.MANUAL)),
        images_with_captions=Count("image_id", distinct=True, filter=Q(label_type=LabelType.CAPTION)),
        last_label_at=Max("created_at"),
        **per_type,
    )
    tags = _text_counts(labels.filter(label_type__in=TAG_TYPES), counted=None, limit=ALBUM_TOP_TAGS, offset=0)

    image_count = album["image_count"]
    with_labels = totals["images_with_labels"]
    stamps = [stamp for stamp in (totals["last_label_at"], album["last_result_at"]) if stamp is not None]
    return {
        "album_id": album_id,
        "image_count": image_count,
        "labels_total": totals["labels_total"],
        "labels_by_type": {value: totals[f"type_{value}"] for value in LabelType.values},
        "images_with_labels": with_labels,
        "images_with_manual_labels": totals["images_with_manual_labels"],
        "images_with_captions": totals["images_with_captions"],
        "unlabeled_images": image_count - with_labels,
        "average_labels_per_image": _ratio(totals["labels_total"], image_count),
        "coverage": {
            "labels_percent": _percent(with_labels, image_count),
            "manual_percent": _percent(totals["images_with_manual_labels"], image_count),
            "caption_percent": _percent(totals["images_with_captions"], image_count),
        },
        "top_tags": _tag_counts(tags["rows"], tags["counted"]),
        "nsfw_count": album["nsfw_count"],
        "last_labeled_at": max(stamps) if stamps else None,
    }


# --- /api/labels/* (everyone, scoped to what they may see) ------------------------------------


def label_stats(user, filters: LabelFilters, *, live: bool = False) -> LabelStats:
    """Totals, distinct texts, per-image spread, coverage, top tags and counts by type, in scope.

    Queries: images in scope, labels per image; then the tally (compaction, texts in scope, the top
    `limit` tags) or, with an album, labels per text (distinct texts and the top tags in one).
    `offset` does not apply: these are the top tags. `live` computes the per-text figures by
    grouping the labels even without an album: the reference the tally is tested against.
    """
    per_image = _per_image(user, filters.album_id, filters.label_type, histogram=False)
    if filters.album_id is None and not live:
        # Distinct texts of every type (or of the one asked for); top tags among the tag types (or
        # of the one asked for, if it is one).
        kind = filters.label_type
        texts = _tally_counts(
            user,
            groups=kind or LabelTextTally.ALL,
            counted=LabelTextTally.TAGS if kind is None else kind if kind in TAG_TYPES else None,
            limit=filters.limit,
            offset=0,
        )
    else:
        texts = _text_counts(
            _scoped_labels(user, filters.album_id, filters.label_type),
            counted=Q(label_type__in=TAG_TYPES),
            limit=filters.limit,
            offset=0,
        )
    images_total, total = per_image["images"], per_image["labels"]
    return {
        "total_labels": total,
        "unique_labels": texts["groups"],
        "images_total": images_total,
        "images_with_labels": per_image["labeled"],
        "avg_labels_per_image": _ratio(total, images_total),
        "min_labels_per_image": per_image["fewest"],
        "max_labels_per_image": per_image["most"],
        "coverage_percent": _percent(per_image["labeled"], images_total),
        "top_tags": _tag_counts(texts["rows"], texts["counted"]),
        "by_type": per_image["by_type"],
    }


def top_tags(user, filters: LabelFilters, *, live: bool = False) -> TopTags:
    """Tag texts (label types in TAG_TYPES) by count, one page; percentages of all tag labels in scope.

    From the tally without an album (see label_stats for `live`); a label_type that is not a tag
    type has no tags, and costs no query.
    """
    if filters.album_id is None and not live:
        if filters.label_type is None or filters.label_type in TAG_TYPES:
            scope = filters.label_type or LabelTextTally.TAGS
            texts = _tally_counts(user, groups=scope, counted=scope, limit=filters.limit, offset=filters.offset)
        else:
            texts = {"rows": [], "groups": 0, "counted": 0}
    else:
        tags = _scoped_labels(user, filters.album_id, filters.label_type).filter(label_type__in=TAG_TYPES)
        texts = _text_counts(tags, counted=None, limit=filters.limit, offset=filters.offset)
    return {
        "total_labels": texts["counted"],
        "unique_tags": texts["groups"],
        "limit": filters.limit,
        "offset": filters.offset,
        "results": _tag_counts(texts["rows"], texts["counted"]),
    }


def label_distribution(user, filters: LabelFilters) -> LabelDistribution:
    """Labels by type, a labels-per-image histogram, and a page of albums with their coverage."""
    per_image = _per_image(user, filters.album_id, filters.label_type, histogram=True)
    histogram: list[HistogramBucket] = [
        {"labels": k if k < HISTOGRAM_CAP else f"{HISTOGRAM_CAP}+", "images": per_image["histogram"][k]}
        for k in range(min(per_image["most"], HISTOGRAM_CAP) + 1)
    ]

    albums = Album.objects.visible_to(user).order_by("id")
    if filters.album_id is not None:
        albums = albums.filter(pk=filters.album_id)
    # Correlated subqueries, evaluated for the page of albums only: one query for any page size.
    in_album = _scoped_images(user, None).filter(album_links__album_id=OuterRef("pk"))
    labeled = Label.objects.filter(image=OuterRef("pk"))
    if filters.label_type is not None:
        labeled = labeled.filter(label_type=filters.label_type)
    page = albums.annotate(
        image_count=_count_subquery(in_album),
        images_with_labels=_count_subquery(in_album.filter(Exists(labeled))),
        labels_total=_count_subquery(
            _scoped_labels(user, None, filters.label_type).filter(image__album_links__album_id=OuterRef("pk"))
        ),
    ).values_list("id", "name", "image_count", "images_with_labels", "labels_total")[
        filters.offset : filters.offset + filters.limit
    ]
    return {
        "by_type": per_image["by_type"],
        "labels_per_image": histogram,
        "albums": [
            {
                "album_id": album_id,
                "name": name,
                "image_count": image_count,
                "images_with_labels": with_labels,
                "labels_total": labels_total,
                "coverage_percent": _percent(with_labels, image_count),
            }
            for album_id, name, image_count, with_labels, labels_total in page
        ],
        "album_count": albums.count(),
    }
