"""Disk stats: the walk, mounts, snapshots, the endpoint, the admin page and alerts once per crossing.

Trees are built in tmp with known sizes; the webhook is a real HTTP server on 127.0.0.1; mail goes to
Django's locmem outbox. Where the test needs fixed numbers from a filesystem that other processes
write to at the same time, os.statvfs answers with one real reading (or a scripted one) throughout.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from albums.models import Image, ImageSource
from imagineer.ops.models import DiskAlertState, DiskSnapshot
from imagineer.ops.services import disk
from tests.assertions import assert_envelope
from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db

URL = "/api/admin/disk-stats"
REFRESH_URL = "/api/admin/disk-stats/refresh"


# --- The tree ---------------------------------------------------------------------------------------


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.fixture
def tree(tmp_path, settings, media_root) -> Path:
    """Known files under media, models, training and one configured extra; traps that must not count."""
    write(media_root / "images" / "a.png", 1000)
    write(media_root / "images" / "2024" / "01" / "b.png", 2345)
    write(media_root / "images" / "2024" / "01" / "empty.png", 0)  # a file, even empty
    write(media_root / "thumbnails" / "t.webp", 100)
    lora = write(media_root / "loras" / "x.safetensors", 4096)
    os.link(lora, media_root / "loras" / "x-hardlink.safetensors")  # one inode: counted once
    write(media_root / "scraped" / "s.jpg", 50)  # not a known subfolder: found because it exists
    write(media_root / ".readyz" / "probe", 7)  # hidden: not a monitored directory

    outside = tmp_path / "outside"
    big = outside / "big.bin"
    big.parent.mkdir()
    with big.open("wb") as handle:
        handle.truncate(5 * 1024**3)  # sparse: 5 GiB apparent size, nothing on disk
    (media_root / "images" / "big-link.bin").symlink_to(big)  # a symlink to a big file outside
    (media_root / "images" / "outside-dir").symlink_to(outside, target_is_directory=True)
    (media_root / "images" / "2024" / "loop").symlink_to(media_root / "images", target_is_directory=True)
    (media_root / "images" / "dangling").symlink_to(tmp_path / "nowhere")

    write(tmp_path / "models" / "sd15" / "unet.bin", 7000)
    write(tmp_path / "training" / "run-1" / "log.txt", 300)
    write(tmp_path / "archive" / "z.bin", 123)
    settings.IMAGINEER_MODELS_DIR = tmp_path / "models"
    settings.IMAGINEER_TRAINING_DIR = tmp_path / "training"
    settings.IMAGINEER_SCRATCH_DIR = tmp_path / "scratch"  # missing: listed, exists false
    config = tmp_path / "config.yaml"
    config.write_text(
        "disk:\n"
        "  alert_emails: [ops@example.com]\n"
        f"  extra_directories:\n    - {{label: archive, path: {tmp_path / 'archive'}}}\n"
    )
    settings.IMAGINEER_CONFIG = config
    settings.IMAGINEER_ALERT_WEBHOOK_URL = ""
    return tmp_path


@pytest.fixture
def frozen_statvfs(monkeypatch) -> dict[str, os.statvfs_result]:
    """Each path's first real os.statvfs reading, answered again on every later call."""
    real, readings = os.statvfs, {}

    def statvfs(path):
        return readings.setdefault(os.fspath(path), real(path))

    monkeypatch.setattr(os, "statvfs", statvfs)
    return readings


def statvfs_at(percent: float) -> os.statvfs_result:
    blocks = 1_000_000
    free = round(blocks * (100 - percent) / 100)
    return os.statvfs_result((4096, 4096, blocks, free, free, 0, 0, 0, 0, 255))


@pytest.fixture
def disk_at(monkeypatch):
    """Script the mounts' fullness: disk_at(90) makes every mount 90% used for the next snapshots."""
    current = {"reading": statvfs_at(50)}
    monkeypatch.setattr(os, "statvfs", lambda path: current["reading"])

    def set_percent(percent: float) -> None:
        current["reading"] = statvfs_at(percent)

    return set_percent


def directories(snapshot: DiskSnapshot) -> dict[str, dict]:
    return {entry["label"]: entry for entry in snapshot.directories}


# --- Sizes and counts -------------------------------------------------------------------------------


def test_sizes_and_file_counts_match_the_tree(tree, frozen_statvfs):
    found = directories(disk.take_snapshot())
    measured = {
        label: (d["size_bytes"], d["file_count"], d["dir_count"])
        for label, d in found.items()
        if d["exists"] and d["origin"] != "database"
    }
    assert measured == {
        "media_images": (3345, 3, 2),  # symlinks (loop, big file, outside dir, dangling) not followed nor counted
        "media_thumbnails": (100, 1, 0),
        "media_loras": (4096, 1, 0),  # the hard link counted once
        "media_scraped": (50, 1, 0),
        "models": (7000, 1, 1),
        "training": (300, 1, 1),
        "archive": (123, 1, 0),
    }
    assert all(d["complete"] and d["skipped_entries"] == 0 for d in found.values())


def test_missing_directories_are_listed_as_missing(tree, frozen_statvfs):
    found = directories(disk.take_snapshot())
    for label in ("media_legacy", "media_bug_reports", "scratch"):
        assert found[label]["exists"] is False
        assert found[label]["size_bytes"] == 0
        assert found[label]["mount"] == "media_images"  # the mount of the nearest existing parent


def test_scraped_images_are_summed_from_their_rows(tree, frozen_statvfs):
    found = directories(disk.take_snapshot())
    assert (found["scraped_images"]["origin"], found["scraped_images"]["file_count"]) == ("database", 0)

    image = {"width": 1, "height": 1, "format": "PNG"}
    Image.objects.create(file="images/s.png", sha256="a" * 64, file_size=777, source=ImageSource.SCRAPED, **image)
    Image.objects.create(file="images/u.png", sha256="b" * 64, file_size=5, source=ImageSource.UPLOADED, **image)
    found = directories(disk.take_snapshot())
    assert (found["scraped_images"]["size_bytes"], found["scraped_images"]["file_count"]) == (777, 1)


def test_mount_numbers_equal_statvfs(tree, frozen_statvfs):
    snapshot = disk.take_snapshot()
    assert len(snapshot.mounts) == 1, snapshot.mounts  # every directory of the tree is on one filesystem
    mount = snapshot.mounts[0]
    reading = os.statvfs(tree / "media" / "images")
    used = (reading.f_blocks - reading.f_bfree) * reading.f_frsize
    free = reading.f_bavail * reading.f_frsize
    assert mount == {
        "mount": "media_images",
        "total_bytes": reading.f_blocks * reading.f_frsize,
        "used_bytes": used,
        "free_bytes": free,
        "percent_used": round(used / (used + free) * 100, 2),
    }
    images = directories(snapshot)["media_images"]
    assert images["percent_of_mount"] == round(3345 / mount["total_bytes"] * 100, 2)


def test_directories_on_two_filesystems_make_two_mounts(tree, monkeypatch, frozen_statvfs):
    real_stat = os.stat
    models = os.fspath(tree / "models")

    class OtherDevice:
        def __init__(self, info):
            self._info = info
            self.st_dev = info.st_dev + 1

        def __getattr__(self, name):
            return getattr(self._info, name)

    def stat(path, *args, **kwargs):
        info = real_stat(path, *args, **kwargs)
        return OtherDevice(info) if os.fspath(path) == models else info

    monkeypatch.setattr(os, "stat", stat)
    snapshot = disk.take_snapshot()
    assert [m["mount"] for m in snapshot.mounts] == ["media_images", "models"]
    assert directories(snapshot)["models"]["mount"] == "models"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory: chmod cannot make one unreadable")
def test_unreadable_directory_is_skipped_not_fatal(tree, frozen_statvfs):
    locked = tree / "media" / "images" / "2024"
    locked.chmod(0)
    try:
        images = directories(disk.take_snapshot())["media_images"]
    finally:
        locked.chmod(0o755)
    assert (images["size_bytes"], images["file_count"], images["skipped_entries"]) == (1000, 1, 1)


def test_permission_denied_mid_walk_is_skipped_not_fatal(tree, monkeypatch, frozen_statvfs):
    # The same as the chmod test above, for a run as root: scandir answers EACCES for one directory.
    real_scandir, locked = os.scandir, os.fspath(tree / "media" / "images" / "2024")

    def scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    images = directories(disk.take_snapshot())["media_images"]
    assert (images["size_bytes"], images["file_count"], images["skipped_entries"]) == (1000, 1, 1)
    assert images["complete"] is True  # the walk finished; it just could not read one directory


def test_files_vanishing_mid_walk_are_skipped(tree, monkeypatch, frozen_statvfs):
    real_scandir, folder = os.scandir, tree / "media" / "images" / "2024" / "01"

    def scandir(path="."):
        with real_scandir(path) as listing:
            entries = list(listing)
        if os.fspath(path) == os.fspath(folder):
            (folder / "b.png").unlink()  # listed, then gone before the walker stats it
        return contextlib.nullcontext(entries)

    monkeypatch.setattr(os, "scandir", scandir)
    images = directories(disk.take_snapshot())["media_images"]
    assert (images["size_bytes"], images["file_count"], images["skipped_entries"]) == (1000, 2, 1)


def test_walk_stops_at_the_deadline(tree):
    ticks = iter(range(1_000_000))
    usage = disk.measure_tree(tree / "media" / "images", deadline=3, clock=lambda: next(ticks))
    assert usage.complete is False
    assert usage.file_count < 3


def test_snapshot_past_its_time_limit_is_incomplete(tree, frozen_statvfs):
    ticks = iter(range(1_000_000))
    snapshot = disk.take_snapshot(clock=lambda: next(ticks) * 10.0)  # 10 s per look at the clock
    assert snapshot.complete is False
    found = directories(snapshot)
    assert found["archive"]["complete"] is False  # the last directory was never reached
    assert found["archive"]["size_bytes"] == 0


# --- The endpoint -----------------------------------------------------------------------------------


def test_endpoint_serves_the_latest_snapshot_with_its_age(tree, frozen_statvfs, admin_client_api):
    older = disk.take_snapshot()
    latest = disk.take_snapshot()
    DiskSnapshot.objects.filter(pk=older.pk).update(taken_at=timezone.now() - timedelta(hours=7))
    DiskSnapshot.objects.filter(pk=latest.pk).update(taken_at=timezone.now() - timedelta(hours=1))
    body = admin_client_api.get(URL).json()
    assert body["snapshot_id"] == latest.pk
    assert 3590 <= body["age_seconds"] <= 3700
    assert body["stale"] is False
    assert body["stale_after_seconds"] == 12 * 3600  # twice the 6 h schedule of migration 0002
    assert body["mounts"]["media_images"]["total_bytes"] == latest.mounts[0]["total_bytes"]
    assert body["directories"]["media_images"]["size_bytes"] == 3345
    assert body["directories"]["archive"]["mount"] == "media_images"
    assert body["hint"] is None


def test_endpoint_says_when_the_snapshot_is_stale(tree, frozen_statvfs, admin_client_api):
    snapshot = disk.take_snapshot()
    DiskSnapshot.objects.filter(pk=snapshot.pk).update(taken_at=timezone.now() - timedelta(hours=13))
    assert admin_client_api.get(URL).json()["stale"] is True


def test_endpoint_never_shows_a_path(tree, frozen_statvfs, admin_client_api):
    disk.take_snapshot()
    response = admin_client_api.get(URL)
    assert response.status_code == 200, response.content
    text = response.content.decode()
    directories = json.loads(text)["directories"]
    assert "media_images" in directories  # the snapshot is shown, its directories by label
    assert str(tree) not in text
    assert "/" not in "".join(directories)


def test_endpoint_without_a_snapshot_answers_200_with_a_hint(admin_client_api):
    response = admin_client_api.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert (body["snapshot_id"], body["taken_at"], body["age_seconds"], body["stale"]) == (None, None, None, True)
    assert body["mounts"] == {} and body["directories"] == {}
    assert "refresh" in body["hint"]


def test_endpoint_is_admin_only(api_client, user_client_api):
    assert_envelope(api_client.get(URL), 401, "not_authenticated")
    assert_envelope(user_client_api.get(URL), 403, "permission_denied")
    assert_envelope(api_client.post(REFRESH_URL), 401, "not_authenticated")
    assert_envelope(user_client_api.post(REFRESH_URL), 403, "permission_denied")


@pytest.fixture
def sent_tasks(monkeypatch) -> list[str]:
    sent: list[str] = []

    class Result:
        id = "task-1"

    def send_task(self, name, *args, **kwargs):
        sent.append(name)
        return Result()

    monkeypatch.setattr("celery.app.base.Celery.send_task", send_task)
    return sent


def test_refresh_queues_one_snapshot_per_minute(admin_client_api, sent_tasks):
    first = admin_client_api.post(REFRESH_URL)
    second = admin_client_api.post(REFRESH_URL)
    assert (first.status_code, first.json()["queued"], first.json()["task_id"]) == (202, True, "task-1")
    assert (second.status_code, second.json()["queued"]) == (202, False)
    assert sent_tasks == ["imagineer.ops.tasks.take_disk_snapshot"]


def test_refresh_with_the_queue_down_answers_503(admin_client_api, monkeypatch):
    def send_task(self, name, *args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("celery.app.base.Celery.send_task", send_task)
    assert_envelope(admin_client_api.post(REFRESH_URL), 503, "queue_unavailable")


def test_beat_task_stores_a_snapshot(tree, frozen_statvfs):
    from imagineer.ops.tasks import take_disk_snapshot

    snapshot_id = take_disk_snapshot.apply().get()
    assert DiskSnapshot.objects.get(pk=snapshot_id).complete is True


# --- The admin page ---------------------------------------------------------------------------------


def test_usage_page_renders_an_svg_chart_and_bars(tree, frozen_statvfs, admin_browser):
    older = disk.take_snapshot()
    DiskSnapshot.objects.filter(pk=older.pk).update(taken_at=timezone.now() - timedelta(hours=6))
    disk.take_snapshot()
    response = admin_browser.get(reverse("admin:ops_disksnapshot_usage"))
    assert response.status_code == 200
    page = response.content.decode()
    assert '<svg class="disk-chart" id="disk_usage_chart"' in page
    assert "<polyline" in page
    assert '<svg class="disk-chart" id="disk_directory_bars"' in page
    assert "media_images" in page and "Take snapshot now" in page
    assert str(tree) not in page
    assert "<script" not in page.split('id="content-main"')[1]


def test_usage_page_without_snapshots_renders(admin_browser):
    response = admin_browser.get(reverse("admin:ops_disksnapshot_usage"))
    assert response.status_code == 200
    assert "No snapshot yet" in response.content.decode()


def test_take_snapshot_now_button_queues_a_snapshot(admin_browser, sent_tasks):
    response = admin_browser.post(reverse("admin:ops_disksnapshot_take"))
    assert response.status_code == 302
    assert sent_tasks == ["imagineer.ops.tasks.take_disk_snapshot"]


def test_snapshot_list_and_detail_render(tree, frozen_statvfs, admin_browser):
    snapshot = disk.take_snapshot()
    listing = admin_browser.get(reverse("admin:ops_disksnapshot_changelist"))
    assert listing.status_code == 200 and reverse("admin:ops_disksnapshot_usage") in listing.content.decode()
    detail = admin_browser.get(reverse("admin:ops_disksnapshot_change", args=[snapshot.pk]))
    assert detail.status_code == 200 and "media_loras" in detail.content.decode()


def test_usage_page_is_for_staff_only(plain_user, client):
    client.force_login(plain_user)
    response = client.get(reverse("admin:ops_disksnapshot_usage"))
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- Alerts -----------------------------------------------------------------------------------------


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(settings):
    """A Slack-compatible incoming webhook on 127.0.0.1; `.posts` holds each JSON body received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebhookHandler)
    server.posts, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.IMAGINEER_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/secret"
    settings.IMAGINEER_ALERT_WEBHOOK_TIMEOUT_SECONDS = 5
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_alert_is_sent_once_per_crossing(tree, disk_at, webhook, mailoutbox):
    disk_at(90)  # crosses the default 85% threshold
    first = disk.take_snapshot()
    assert len(webhook.posts) == 1 and len(mailoutbox) == 1
    assert "media_images" in webhook.posts[0]["text"] and "90.0%" in webhook.posts[0]["text"]
    assert mailoutbox[0].to == ["ops@example.com"]
    assert first.alerts == [
        {
            "type": "capacity",
            "mount": "media_images",
            "percent_used": 90.0,
            "threshold_percent": 85.0,
            "new_crossing": True,
        }
    ]

    disk_at(92)  # still above: no new alert
    second = disk.take_snapshot()
    assert len(webhook.posts) == 1 and len(mailoutbox) == 1
    assert second.alerts[0]["new_crossing"] is False

    disk_at(50)  # back below: re-armed, nothing sent
    assert disk.take_snapshot().alerts == []
    assert len(webhook.posts) == 1 and len(mailoutbox) == 1

    disk_at(88)  # crosses again: one more
    disk.take_snapshot()
    assert len(webhook.posts) == 2 and len(mailoutbox) == 2
    assert DiskAlertState.objects.get(mount="media_images").above_threshold is True


def test_small_dip_below_threshold_does_not_rearm(tree, disk_at, webhook, mailoutbox):
    disk_at(86)
    disk.take_snapshot()
    disk_at(84)  # below 85, but within the re-arm margin (2 points)
    disk.take_snapshot()
    disk_at(86)
    disk.take_snapshot()
    assert len(webhook.posts) == 1 and len(mailoutbox) == 1


def test_threshold_from_settings_is_used(tree, disk_at, webhook, mailoutbox, settings):
    settings.IMAGINEER_DISK_ALERT_PERCENT = 95.0
    disk_at(90)
    snapshot = disk.take_snapshot()
    assert (snapshot.threshold_percent, snapshot.alerts, webhook.posts) == (95.0, [], [])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_webhook_down_still_sends_the_email_and_stores_the_snapshot(tree, disk_at, settings, mailoutbox):
    settings.IMAGINEER_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{_closed_port()}/hook"
    settings.IMAGINEER_ALERT_WEBHOOK_TIMEOUT_SECONDS = 2
    disk_at(90)
    snapshot = disk.take_snapshot()
    assert DiskSnapshot.objects.filter(pk=snapshot.pk).exists()
    assert len(mailoutbox) == 1
    assert DiskAlertState.objects.get(mount="media_images").notified_at is not None


def test_webhook_error_status_still_sends_the_email(tree, disk_at, webhook, mailoutbox):
    webhook.status = 500
    disk_at(90)
    disk.take_snapshot()
    assert len(webhook.posts) == 1 and len(mailoutbox) == 1


def test_alert_that_reached_no_one_is_tried_again(tree, disk_at, webhook, settings, mailoutbox):
    webhook.status = 500
    settings.IMAGINEER_CONFIG = tree / "no-config.yaml"  # no alert_emails, and no staff e-mail yet
    disk_at(90)
    disk.take_snapshot()
    assert mailoutbox == [] and DiskAlertState.objects.get(mount="media_images").notified_at is None

    webhook.status = 200
    disk.take_snapshot()  # still above, but the crossing was never announced
    assert len(webhook.posts) == 2
    disk.take_snapshot()
    assert len(webhook.posts) == 2


def test_without_configured_emails_staff_are_mailed(tree, disk_at, settings, mailoutbox):
    settings.IMAGINEER_CONFIG = tree / "no-config.yaml"
    AdminFactory(email="admin-one@example.com")
    AdminFactory(email="")  # no address: skipped
    disk_at(90)
    disk.take_snapshot()
    assert [message.to for message in mailoutbox] == [["admin-one@example.com"]]


def test_alert_text_names_labels_not_paths(tree, disk_at, webhook, mailoutbox):
    disk_at(90)
    disk.take_snapshot()
    for text in (webhook.posts[0]["text"], mailoutbox[0].body, mailoutbox[0].subject):
        assert "media_images" in text  # the alert names the mount by its label ...
        assert str(tree) not in text  # ... and never by its path


def test_no_log_line_carries_the_webhook_url(tree, disk_at, webhook, mailoutbox, settings):
    """The URL of an incoming webhook is its credential, whatever the provider's URL shape."""
    from tests.log_capture import LogCapture

    port = webhook.server_address[1]
    settings.IMAGINEER_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{port}/hooks/sentinel-hook-token-4f9a2c"
    disk_at(90)
    with LogCapture() as captured:
        disk.take_snapshot()
    assert len(webhook.posts) == 1 and len(mailoutbox) == 1
    text = captured.text()
    assert "disk.alert" in text  # the alert was logged ...
    assert "sentinel-hook-token-4f9a2c" not in text and "ops@example.com" not in text  # ... without URL or address
