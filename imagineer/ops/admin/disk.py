"""Operations › Disk snapshots: the stored samples (read-only), alert states, and the "Disk usage" page.

The page (DiskSnapshotAdmin.usage_view, /admin/ops/disksnapshot/usage/) draws percent used per
mount over time and the latest size of each monitored directory as inline SVG built here, so it
needs no JavaScript and no CDN. Its "Take snapshot now" button queues a snapshot, like
POST /api/admin/disk-stats/refresh. Like the API, nothing on these pages shows a filesystem path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat, pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from imagineer.core.errors import ServiceUnavailableError
from imagineer.ops.models import DiskAlertState, DiskSnapshot
from imagineer.ops.services import disk

PALETTE = ("#2f6fb0", "#d1602d", "#3b9a57", "#8e5cb8", "#c2455a", "#6b7a2a", "#1f9fa6", "#9a6a3a")
HISTORY_DAYS = (7, 30, 90, 365)
MAX_POINTS = 400  # per mount: more samples than pixels only slow the page
MAX_SNAPSHOTS_READ = 5000  # one sample every 6 h for ~3 years


# --- Chart geometry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    width: int
    height: int
    left: int = 48
    right: int = 16
    top: int = 16
    bottom: int = 36

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def plot_right(self) -> float:
        return self.width - self.right

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom


def usage_chart(snapshots: list[DiskSnapshot], *, width: int = 760, height: int = 300) -> dict | None:
    """Percent used per mount over time (oldest first), as SVG coordinates; None with no snapshots."""
    if not snapshots:
        return None
    box = Box(width, height)
    start, end = snapshots[0].taken_at, snapshots[-1].taken_at
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        if start == end:
            return box.left + box.plot_width / 2
        return round(box.left + (at - start).total_seconds() / span * box.plot_width, 1)

    def y(percent: float) -> float:
        return round(box.top + (100 - min(max(percent, 0.0), 100.0)) / 100 * box.plot_height, 1)

    samples: dict[str, list[tuple[float, float, float]]] = {}
    for snapshot in snapshots:
        for mount in snapshot.mounts:
            samples.setdefault(mount["mount"], []).append(
                (x(snapshot.taken_at), y(mount["percent_used"]), mount["percent_used"])
            )
    series = []
    for index, (label, points) in enumerate(samples.items()):
        step = max(1, -(-len(points) // MAX_POINTS))
        kept = points[::step]
        if kept[-1] is not points[-1]:
            kept.append(points[-1])  # the latest sample is always drawn
        series.append(
            {
                "mount": label,
                "color": PALETTE[index % len(PALETTE)],
                "points": " ".join(f"{px},{py}" for px, py, _ in kept),
                "markers": [{"x": px, "y": py} for px, py, _ in kept] if len(kept) <= 60 else [],
                "latest_percent": points[-1][2],
            }
        )
    threshold = snapshots[-1].threshold_percent
    return {
        "width": width,
        "height": height,
        "box": box,
        "series": series,
        "y_ticks": [{"y": y(p), "label": f"{p}%"} for p in (0, 25, 50, 75, 100)],
        "x_ticks": _time_ticks(start, end, x),
        "threshold": {"y": y(threshold), "label": f"threshold {threshold:g}%"},
    }


def _time_ticks(start: datetime, end: datetime, x) -> list[dict]:
    if start == end:
        return [{"x": x(start), "label": f"{start:%Y-%m-%d %H:%M}"}]
    fmt = "%m-%d %H:%M" if end - start <= timedelta(days=3) else "%Y-%m-%d"
    return [
        {"x": x(start + (end - start) * i / 4), "label": f"{start + (end - start) * i / 4:{fmt}}"} for i in range(5)
    ]


def directory_bars(snapshot: DiskSnapshot | None, *, width: int = 960, row_height: int = 24) -> dict | None:
    """Horizontal bars of the latest snapshot's directories, largest first, scaled to the largest."""
    if snapshot is None or not snapshot.directories:
        return None
    rows = sorted(snapshot.directories, key=lambda d: (-d["size_bytes"], d["label"]))
    largest = max(rows[0]["size_bytes"], 1)
    # Room for the longest value line ("… · 0.0% of media_thumbnails (missing)"): an SVG clips
    # what runs past its width, and the state at the end is what an operator must not lose.
    label_width, value_width = 160, 440
    bar_space = width - label_width - value_width
    colors = {mount["mount"]: PALETTE[i % len(PALETTE)] for i, mount in enumerate(snapshot.mounts)}
    bars = []
    for index, row in enumerate(rows):
        bar_width = round(row["size_bytes"] / largest * bar_space, 1)
        state = "" if row["exists"] else " (missing)"
        if not row["complete"]:
            state += " (partial)"
        bars.append(
            {
                "label": row["label"],
                "y": index * row_height,
                "text_y": round(index * row_height + row_height * 0.65, 1),
                "width": max(bar_width, 1.0) if row["size_bytes"] else 0,
                "color": colors.get(row["mount"], "#888"),
                "value": (
                    f"{filesizeformat(row['size_bytes'])} · {row['file_count']} file{pluralize(row['file_count'])} · "
                    f"{row['percent_of_mount']}% of {row['mount']}{state}"
                ),
            }
        )
    return {
        "width": width,
        "height": len(rows) * row_height,
        "bar_x": label_width,
        "value_x": label_width + bar_space + 8,
        "bar_height": row_height - 8,
        "bars": bars,
    }


# --- Admin ---------------------------------------------------------------------------------------


class HistoryForm(forms.Form):
    days = forms.TypedChoiceField(
        choices=[(d, f"{d} days") for d in HISTORY_DAYS], coerce=int, required=False, empty_value=30, initial=30
    )


@admin.register(DiskSnapshot)
class DiskSnapshotAdmin(admin.ModelAdmin):
    list_display = ["taken_at", "complete", "fullest_mount", "alert_count", "duration_seconds"]
    list_filter = ["complete", "taken_at"]
    date_hierarchy = "taken_at"
    change_list_template = "admin/ops/disksnapshot/change_list.html"
    fields = ["taken_at", "duration_seconds", "threshold_percent", "complete", "mounts_table", "directories_table"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # snapshots come from the walk: "Take snapshot now" on the Disk usage page

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Fullest mount")
    def fullest_mount(self, obj: DiskSnapshot) -> str:
        if not obj.mounts:
            return "-"
        mount = max(obj.mounts, key=lambda m: m["percent_used"])
        return f"{mount['mount']}: {mount['percent_used']}%"

    @admin.display(description="Alerts")
    def alert_count(self, obj: DiskSnapshot) -> int:
        return len(obj.alerts)

    @admin.display(description="Mounts")
    def mounts_table(self, obj: DiskSnapshot):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}%</td></tr>",
            (
                (
                    m["mount"],
                    filesizeformat(m["total_bytes"]),
                    filesizeformat(m["used_bytes"]),
                    filesizeformat(m["free_bytes"]),
                    m["percent_used"],
                )
                for m in obj.mounts
            ),
        )
        return format_html(
            "<table><thead><tr><th>Mount</th><th>Total</th><th>Used</th><th>Free</th><th>Used %</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Directories")
    def directories_table(self, obj: DiskSnapshot):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}%</td><td>{}</td></tr>",
            (
                (
                    d["label"],
                    d["mount"] or "-",
                    "yes" if d["exists"] else "no",
                    filesizeformat(d["size_bytes"]),
                    d["file_count"],
                    d["percent_of_mount"],
                    "complete" if d["complete"] else "partial (time limit)",
                )
                for d in obj.directories
            ),
        )
        return format_html(
            "<table><thead><tr><th>Directory</th><th>Mount</th><th>Exists</th><th>Size</th><th>Files</th>"
            "<th>Of mount</th><th>Walk</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("usage/", wrap(self.usage_view), name="ops_disksnapshot_usage"),
            path("usage/snapshot/", wrap(self.take_snapshot_view), name="ops_disksnapshot_take"),
            *super().get_urls(),
        ]

    def usage_view(self, request):
        """Usage over time per mount, and the latest directory sizes."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = HistoryForm(request.GET or None)  # unbound without parameters: the select shows 30 days
        days = form.cleaned_data["days"] if form.is_bound and form.is_valid() else 30
        since = timezone.now() - timedelta(days=days)
        recent = DiskSnapshot.objects.filter(taken_at__gte=since).order_by("-taken_at")
        history = list(recent.only("taken_at", "mounts", "threshold_percent")[:MAX_SNAPSHOTS_READ])[::-1]
        stats = disk.latest_disk_stats()
        latest = DiskSnapshot.objects.filter(pk=stats["snapshot_id"]).first() if stats["snapshot_id"] else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Disk usage",
            "opts": self.opts,
            "form": form,
            "days": days,
            "stats": stats,
            "chart": usage_chart(history),
            "bars": directory_bars(latest),
            "alert_states": DiskAlertState.objects.order_by("mount"),
        }
        return TemplateResponse(request, "admin/ops/disksnapshot/usage.html", context)

    def take_snapshot_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            outcome = disk.request_snapshot()
        except ServiceUnavailableError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, outcome["message"], messages.SUCCESS if outcome["queued"] else messages.INFO)
        return HttpResponseRedirect(reverse("admin:ops_disksnapshot_usage"))


@admin.register(DiskAlertState)
class DiskAlertStateAdmin(admin.ModelAdmin):
    """Per mount: above the threshold or not, since when, and when the alert went out."""

    list_display = ["mount", "above_threshold", "percent_used", "crossed_at", "notified_at", "updated_at"]
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
