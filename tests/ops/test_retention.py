"""Retention policies: what each target removes, dry runs, the album rule, concurrency, schedules, admin."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from albums.models import Image, ImageSource
from generation.models import Lora
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from imagineer.ops.models import BugReport, DiskSnapshot, PurgeRun, RetentionPolicy, RetentionTarget
from imagineer.ops.services import retention
from imagineer.ops.services.retention import targets
from imagineer.ops.tasks import run_retention_policy
from tests.factories import AlbumFactory, make_image

DAY = 86400
# The ages the default policies start with (migration 0002 / runtime config).
AGES = {
    RetentionTarget.GENERATION_SCRATCH: 2,
    RetentionTarget.ORPHANED_MEDIA: 7,
    RetentionTarget.SCRAPED_UNALBUMED: 30,
    RetentionTarget.TRAINING_ARTIFACTS: 30,
    RetentionTarget.BUG_REPORTS: 90,
    RetentionTarget.DISK_SNAPSHOTS: 90,
}


def age(path: Path, days: float) -> Path:
    when = time.time() - days * DAY
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def write(path: Path, data: bytes = b"x" * 100, *, days: float = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return age(path, days) if days else path


def files_in(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def make_policy(target: str, **fields) -> RetentionPolicy:
    fields.setdefault("max_age_days", AGES[target])
    return RetentionPolicy.objects.create(
        name=f"test {target} {RetentionPolicy.objects.count()}", target=target, **fields
    )


def purge(policy: RetentionPolicy) -> PurgeRun:
    """What the policy's schedule does: start a run and run it here, through the job lifecycle."""
    run = retention.start_scheduled_purge(policy.pk)
    jobs.run_job(PurgeRun, run.pk, retention.run_purge)
    run.refresh_from_db()
    return run


@pytest.fixture
def dirs(settings, tmp_path):
    settings.IMAGINEER_SCRATCH_DIR = tmp_path / "scratch"
    settings.IMAGINEER_TRAINING_DIR = tmp_path / "training"
    return settings.IMAGINEER_SCRATCH_DIR, settings.IMAGINEER_TRAINING_DIR


@pytest.fixture
def sent(monkeypatch):
    """The broker: tasks sent are recorded, not delivered."""
    messages = []

    class Result:
        id = "task-id"

    def send_task(self, name, args=None, **kwargs):
        messages.append((name, args))
        return Result()

    monkeypatch.setattr("celery.app.base.Celery.send_task", send_task)
    return messages


@pytest.fixture
def world(db, dirs, media_root):
    """Something old and something young for every target, plus things no target may touch."""
    scratch, training = dirs
    now = timezone.now()
    album = AlbumFactory()
    w = {
        "scratch_old": write(scratch / "job-1" / "latent.bin", b"a" * 300, days=3),
        "scratch_lora_old": write(scratch / "loras" / "abc.safetensors", b"b" * 200, days=5),
        "scratch_young": write(scratch / "job-2" / "latent.bin", days=0.5),
        "training_log_old": write(training / "logs" / "run-1.log", b"c" * 50, days=40),
        "training_scratch_old": write(training / "scratch" / "run-1" / "step.bin", b"d" * 70, days=40),
        "training_output_old": write(training / "outputs" / "final.safetensors", days=40),  # not purged
        "training_young": write(training / "logs" / "run-2.log", days=1),
        "scraped_old": make_image(source=ImageSource.SCRAPED, created_at=now - timedelta(days=40)),
        "scraped_old_in_album": make_image(
            source=ImageSource.SCRAPED, created_at=now - timedelta(days=40), album=album
        ),
        "scraped_young": make_image(source=ImageSource.SCRAPED, created_at=now - timedelta(days=5)),
        "uploaded_old": make_image(source=ImageSource.UPLOADED, created_at=now - timedelta(days=400)),
    }
    lora_name = default_storage.save("loras/style.safetensors", ContentFile(b"lora"))
    Lora.objects.create(name="style", slug="style", file=lora_name, sha256="e" * 64, family="sd1")
    for key, days in (("report_old", 100), ("report_young", 10)):
        shot = default_storage.save(f"bug_reports/{key}.png", ContentFile(b"p" * 40))
        report = BugReport.objects.create(report_id=f"bug_{key}", description="broken", screenshot=shot)
        BugReport.objects.filter(pk=report.pk).update(created_at=now - timedelta(days=days))
        w[key] = report
    w["snapshots_old"] = [
        DiskSnapshot.objects.create(taken_at=now - timedelta(days=d), threshold_percent=85) for d in (100, 120)
    ]
    w["snapshot_young"] = DiskSnapshot.objects.create(taken_at=now - timedelta(days=1), threshold_percent=85)
    # Every media file so far is referenced by a row; make them all old, then add the orphans.
    for path in media_root.rglob("*"):
        if path.is_file():
            age(path, 30)
    w["orphan_old"] = write(media_root / "images" / "2020" / "01" / "stray.png", b"o" * 123, days=10)
    w["orphan_young"] = write(media_root / "images" / "2020" / "01" / "fresh.png", days=1)
    return w


def state(dirs, media_root) -> dict[str, set]:
    scratch, training = dirs
    return {
        "scratch": files_in(scratch),
        "training": files_in(training),
        "media": files_in(media_root),
        "images": set(Image.objects.values_list("pk", flat=True)),
        "reports": set(BugReport.objects.values_list("pk", flat=True)),
        "snapshots": set(DiskSnapshot.objects.values_list("pk", flat=True)),
    }


def expected_gone(target: str, w: dict, dirs, media_root) -> tuple[dict[str, set], int, int, int]:
    """What a real run of `target` removes: {state key: things}, files, rows, bytes."""
    scratch, training = dirs
    rel = lambda root, *keys: {w[k].relative_to(root).as_posix() for k in keys}  # noqa: E731
    if target == RetentionTarget.GENERATION_SCRATCH:
        return {"scratch": rel(scratch, "scratch_old", "scratch_lora_old")}, 2, 0, 500
    if target == RetentionTarget.TRAINING_ARTIFACTS:
        return {"training": rel(training, "training_log_old", "training_scratch_old")}, 2, 0, 120
    if target == RetentionTarget.ORPHANED_MEDIA:
        return {"media": rel(media_root, "orphan_old")}, 1, 0, 123
    if target == RetentionTarget.SCRAPED_UNALBUMED:
        image = w["scraped_old"]
        names = {image.file.name, image.thumbnail.name}
        size = sum(default_storage.size(n) for n in names)
        return {"media": names, "images": {image.pk}}, 2, 1, size
    if target == RetentionTarget.BUG_REPORTS:
        report = w["report_old"]
        return {"media": {report.screenshot.name}, "reports": {report.pk}}, 1, 1, 40
    return {"snapshots": {s.pk for s in w["snapshots_old"]}}, 0, 2, 0


pytestmark = pytest.mark.django_db(transaction=True)  # deletions commit (files go on commit), threads


@pytest.mark.parametrize("target", list(RetentionTarget))
def test_dry_run_removes_nothing_but_counts_what_would_go(target, world, dirs, media_root, tmp_path):
    before = state(dirs, media_root)
    gone, files, rows, size = expected_gone(target, world, dirs, media_root)
    run = purge(make_policy(target, dry_run=True))
    assert run.status == JobStatus.SUCCEEDED, run.error_message
    assert state(dirs, media_root) == before
    assert (run.dry_run, run.files_removed, run.rows_removed, run.bytes_freed) == (True, files, rows, size)
    assert run.details["candidates"] == len(run.details["would_remove"]) == (rows or files)
    assert str(tmp_path) not in json.dumps(run.details)


@pytest.mark.parametrize("target", list(RetentionTarget))
def test_real_run_removes_only_what_its_target_covers(target, world, dirs, media_root, tmp_path):
    before = state(dirs, media_root)
    gone, files, rows, size = expected_gone(target, world, dirs, media_root)
    policy = make_policy(target)
    run = purge(policy)
    assert run.status == JobStatus.SUCCEEDED, run.error_message
    assert state(dirs, media_root) == {key: things - gone.get(key, set()) for key, things in before.items()}
    assert (run.files_removed, run.rows_removed, run.bytes_freed) == (files, rows, size)
    policy.refresh_from_db()
    assert policy.last_run_status == JobStatus.SUCCEEDED and policy.last_run_at is not None
    assert policy.last_result["files_removed"] == files and policy.last_result["bytes_freed"] == size
    assert str(tmp_path) not in json.dumps(run.details) + json.dumps(policy.last_result)


def test_second_run_finds_nothing_left(world):
    policy = make_policy(RetentionTarget.GENERATION_SCRATCH)
    assert purge(policy).files_removed == 2
    again = purge(policy)
    assert (again.status, again.files_removed, again.details["candidates"]) == (JobStatus.SUCCEEDED, 0, 0)


def test_album_images_survive_and_are_counted_as_kept(world):
    run = purge(make_policy(RetentionTarget.SCRAPED_UNALBUMED))
    assert Image.objects.filter(pk=world["scraped_old_in_album"].pk).exists()
    assert default_storage.exists(world["scraped_old_in_album"].file.name)
    assert run.details["album_images_kept"] == 1


def test_album_images_go_only_when_the_policy_says_so(world):
    run = purge(make_policy(RetentionTarget.SCRAPED_UNALBUMED, include_album_images=True))
    assert run.rows_removed == 2
    in_album = world["scraped_old_in_album"]
    assert not Image.objects.filter(pk=in_album.pk).exists()
    assert not default_storage.exists(in_album.file.name)
    assert Image.objects.filter(pk=world["scraped_young"].pk).exists()


def test_image_added_to_an_album_after_listing_is_kept(world, monkeypatch):
    image = world["scraped_old"]
    listed = targets._ScrapedImages.candidates

    def candidates_then_album_add(self):
        found = list(listed(self))
        AlbumFactory().album_images.create(image=image)  # an operator files it while the run lists
        return iter(found)

    monkeypatch.setattr(targets._ScrapedImages, "candidates", candidates_then_album_add)
    run = purge(make_policy(RetentionTarget.SCRAPED_UNALBUMED))
    assert run.status == JobStatus.SUCCEEDED and run.rows_removed == 0
    assert Image.objects.filter(pk=image.pk).exists() and default_storage.exists(image.file.name)


def test_disk_snapshots_always_keep_the_newest(db):
    old = [
        DiskSnapshot.objects.create(taken_at=timezone.now() - timedelta(days=d), threshold_percent=85)
        for d in (200, 100)
    ]
    run = purge(make_policy(RetentionTarget.DISK_SNAPSHOTS))
    assert run.rows_removed == 1
    assert list(DiskSnapshot.objects.values_list("pk", flat=True)) == [old[1].pk]


def test_orphaned_media_does_not_follow_links_out_of_media(db, media_root, tmp_path):
    outside = tmp_path / "outside"
    target_file = write(outside / "precious.png", days=100)
    write(outside / "folder" / "also-precious.png", days=100)
    (media_root / "legacy").mkdir()
    os.symlink(outside / "folder", media_root / "legacy" / "linked-folder")
    link = media_root / "legacy" / "orphan-link.png"
    os.symlink(target_file, link)
    age(link, 100)
    run = purge(make_policy(RetentionTarget.ORPHANED_MEDIA))
    assert run.status == JobStatus.SUCCEEDED, run.error_message
    assert not link.is_symlink()  # the orphaned link itself goes ...
    assert target_file.exists() and (outside / "folder" / "also-precious.png").exists()  # ... never its target
    assert (media_root / "legacy" / "linked-folder").is_symlink()  # a linked folder is neither entered nor removed
    assert (run.files_removed, run.bytes_freed) == (1, 0)


def test_orphaned_media_works_through_the_storage_api_alone(db, settings):
    """Remote storage (S3 ...) has no local paths: listing, ages, sizes and deletes go through storage."""
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    image = make_image()
    orphan = default_storage.save("images/2020/01/orphan.png", ContentFile(b"o" * 77))
    # In-memory files are as old as this test: purge as if two days had passed.
    policy = make_policy(RetentionTarget.ORPHANED_MEDIA, max_age_days=1)
    later = timezone.now() + timedelta(days=2)
    with mock.patch("imagineer.ops.services.retention.runs.timezone.now", return_value=later):
        run = purge(policy)
    assert (run.status, run.files_removed, run.bytes_freed) == (JobStatus.SUCCEEDED, 1, 77), (
        run.error_message,
        run.details,
    )
    assert not default_storage.exists(orphan)
    assert default_storage.exists(image.file.name) and default_storage.exists(image.thumbnail.name)


def test_scratch_walk_does_not_follow_links(dirs, tmp_path):
    scratch, _ = dirs
    outside = write(tmp_path / "elsewhere" / "big.bin", days=100)
    scratch.mkdir(parents=True)
    os.symlink(outside.parent, scratch / "linked")
    run = purge(make_policy(RetentionTarget.GENERATION_SCRATCH))
    assert run.files_removed == 0 and outside.exists()


def test_missing_scratch_folder_is_not_an_error(dirs):
    run = purge(make_policy(RetentionTarget.GENERATION_SCRATCH))
    assert run.status == JobStatus.SUCCEEDED and run.details["candidates"] == 0 and "note" in run.details


def test_files_removed_by_someone_else_meanwhile_are_not_counted(world, monkeypatch):
    listed = targets._LocalFiles.candidates

    def candidates_then_vanish(self):
        found = list(listed(self))
        found[0].key.unlink()  # another process got there first
        return iter(found)

    monkeypatch.setattr(targets._LocalFiles, "candidates", candidates_then_vanish)
    run = purge(make_policy(RetentionTarget.GENERATION_SCRATCH))
    assert run.status == JobStatus.SUCCEEDED
    assert run.files_removed == 1 and run.details["error_count"] == 0
    assert not world["scratch_old"].exists() and not world["scratch_lora_old"].exists()


@pytest.mark.parametrize("target", [RetentionTarget.GENERATION_SCRATCH, RetentionTarget.SCRAPED_UNALBUMED])
def test_two_runs_at_once_neither_fail_nor_double_count(target, dirs, db):
    scratch, _ = dirs
    if target == RetentionTarget.GENERATION_SCRATCH:
        for i in range(450):  # more than one batch, so the runs overlap
            write(scratch / f"job-{i % 7}" / f"{i}.bin", b"z" * 10, days=10)
        candidates = 450
    else:
        for _ in range(12):
            make_image(source=ImageSource.SCRAPED, created_at=timezone.now() - timedelta(days=60))
        candidates = 12
    policy = make_policy(target)
    runs = [retention.start_scheduled_purge(policy.pk) for _ in range(2)]
    start = threading.Barrier(2)
    errors = []

    def work(run):
        try:
            start.wait()
            jobs.run_job(PurgeRun, run.pk, retention.run_purge)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for run in runs:
        run.refresh_from_db()
        assert run.status == JobStatus.SUCCEEDED, run.error_message
    removed = sum(
        run.files_removed if target == RetentionTarget.GENERATION_SCRATCH else run.rows_removed for run in runs
    )
    assert removed == candidates
    assert files_in(scratch) == set() if target == RetentionTarget.GENERATION_SCRATCH else not Image.objects.exists()


def test_a_stale_holder_does_not_block_the_target(dirs, settings):
    scratch, _ = dirs
    write(scratch / "old.bin", days=10)
    policy = make_policy(RetentionTarget.GENERATION_SCRATCH)
    dead = retention.start_scheduled_purge(policy.pk)
    long_ago = timezone.now() - timedelta(seconds=settings.IMAGINEER_JOB_STALE_AFTER_SECONDS + 60)
    PurgeRun.objects.filter(pk=dead.pk).update(
        status=JobStatus.RUNNING, attempts=1, heartbeat_at=long_ago, details={"holds_target": True}
    )
    run = purge(policy)
    assert run.files_removed == 1 and "skipped" not in run.details


def test_a_live_holder_makes_the_second_run_remove_nothing(dirs):
    scratch, _ = dirs
    write(scratch / "old.bin", days=10)
    policy = make_policy(RetentionTarget.GENERATION_SCRATCH)
    holder = retention.start_scheduled_purge(policy.pk)
    PurgeRun.objects.filter(pk=holder.pk).update(
        status=JobStatus.RUNNING, attempts=1, heartbeat_at=timezone.now(), details={"holds_target": True}
    )
    run = purge(policy)
    assert run.status == JobStatus.SUCCEEDED and run.files_removed == 0
    assert f"#{holder.pk}" in run.details["skipped"]
    assert (scratch / "old.bin").exists()


def test_disabled_or_missing_policy_starts_no_scheduled_run(db):
    policy = make_policy(RetentionTarget.BUG_REPORTS, enabled=False)
    assert retention.start_scheduled_purge(policy.pk) is None
    assert retention.start_scheduled_purge(policy.pk + 1000) is None
    run_retention_policy.apply(args=[policy.pk])
    assert not PurgeRun.objects.exists()


def test_beat_task_runs_the_policy_in_place(db):
    DiskSnapshot.objects.create(taken_at=timezone.now() - timedelta(days=300), threshold_percent=85)
    DiskSnapshot.objects.create(taken_at=timezone.now(), threshold_percent=85)
    policy = make_policy(RetentionTarget.DISK_SNAPSHOTS)
    run_retention_policy.apply(args=[policy.pk])
    run = PurgeRun.objects.get(policy=policy)
    assert (run.status, run.rows_removed) == (JobStatus.SUCCEEDED, 1)


def test_start_purge_snapshots_the_policy_and_enqueues(db, sent):
    policy = make_policy(RetentionTarget.ORPHANED_MEDIA, include_album_images=True)
    run = retention.start_purge(policy, dry_run=True)
    policy.max_age_days = 1
    policy.save()
    run.refresh_from_db()
    assert (run.status, run.dry_run, run.max_age_days, run.include_album_images) == ("queued", True, 7, True)
    assert sent == [("imagineer.ops.tasks.run_purge", [run.pk])]


def test_lora_scratch_copies_live_in_the_scratch_dir(db, dirs, monkeypatch):
    from generation.pipeline.runner import lora_local_path

    name = default_storage.save("loras/remote.safetensors", ContentFile(b"weights"))
    lora = Lora.objects.create(name="remote", slug="remote", file=name, sha256="f" * 64, family="sd1")

    def no_local_path(name):
        raise NotImplementedError

    monkeypatch.setattr(default_storage, "path", no_local_path)  # as with S3 ...
    monkeypatch.setattr(default_storage, "open", lambda name, mode="rb": io.BytesIO(b"weights"))  # ... remote bytes
    path = Path(lora_local_path(lora))
    assert path.parent == dirs[0] / "loras" and path.read_bytes() == b"weights"


# --- Schedules and admin -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_migration_created_a_daily_schedule_per_target():
    policies = RetentionPolicy.objects.select_related("periodic_task__crontab")
    assert {p.target for p in policies} >= set(RetentionTarget)
    for policy in policies.filter(name__in=[name for name, *_ in _default_policies()]):
        task = policy.periodic_task
        assert task.task == "imagineer.ops.tasks.run_retention_policy" and task.queue == "maintenance"
        assert json.loads(task.args) == [policy.pk]
        assert task.crontab is not None and task.crontab.day_of_week == "*" and task.enabled
        assert policy.max_age_days == AGES[policy.target]
    assert RetentionPolicy.objects.get(target=RetentionTarget.ORPHANED_MEDIA).dry_run


def _default_policies():
    import importlib

    return importlib.import_module("imagineer.ops.migrations.0002_default_schedules").DEFAULT_POLICIES


def test_admin_run_now_creates_and_sends_runs(admin_browser, sent):
    policy = make_policy(RetentionTarget.BUG_REPORTS)
    for action, dry_run in (("run_now", False), ("dry_run_now", True)):
        response = admin_browser.post(
            "/admin/ops/retentionpolicy/", {"action": action, "_selected_action": [policy.pk]}, follow=True
        )
        assert response.status_code == 200
        run = PurgeRun.objects.filter(policy=policy).first()
        assert run.dry_run is dry_run and run.status == JobStatus.QUEUED and run.created_by is not None
    assert [name for name, _ in sent] == ["imagineer.ops.tasks.run_purge"] * 2


def test_staff_who_may_only_view_policies_cannot_start_a_purge(client, sent):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_retentionpolicy"), Permission.objects.get(codename="view_purgerun")
    )
    client.force_login(viewer)
    policy = make_policy(RetentionTarget.BUG_REPORTS)
    response = client.get("/admin/ops/retentionpolicy/")
    assert response.status_code == 200 and policy.name in response.content.decode()  # they see the policies ...
    page = response.content.decode()
    assert "run_now" not in page  # ... but the actions are not offered ...
    for action in ("run_now", "dry_run_now"):
        client.post("/admin/ops/retentionpolicy/", {"action": action, "_selected_action": [policy.pk]})
    assert not PurgeRun.objects.exists() and sent == []  # ... and posting them anyway does nothing

    # Nor cancel or retry someone else's purge run (JobAdmin's actions need the change permission).
    run = PurgeRun.objects.create(policy=policy, target=policy.target, max_age_days=1)
    client.post("/admin/ops/purgerun/", {"action": "cancel_jobs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and not run.cancel_requested


def test_a_zero_day_policy_is_refused(admin_browser):
    from django.db import IntegrityError, transaction

    response = admin_browser.post(
        "/admin/ops/retentionpolicy/add/",
        {"name": "Everything now", "target": RetentionTarget.BUG_REPORTS, "max_age_days": "0", "enabled": "on"},
    )
    assert response.status_code == 200 and b"greater than or equal to 1" in response.content
    assert not RetentionPolicy.objects.filter(name="Everything now").exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        RetentionPolicy.objects.create(name="Everything now", target=RetentionTarget.BUG_REPORTS, max_age_days=0)


def test_admin_new_policy_gets_its_schedule_and_default_age(admin_browser):
    response = admin_browser.post(
        "/admin/ops/retentionpolicy/add/",
        {
            "name": "Extra scratch sweep",
            "target": RetentionTarget.GENERATION_SCRATCH,
            "max_age_days": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = RetentionPolicy.objects.get(name="Extra scratch sweep")
    assert policy.max_age_days == 2  # the runtime config's default for the target
    task = policy.periodic_task
    assert task.task == "imagineer.ops.tasks.run_retention_policy" and json.loads(task.args) == [policy.pk]
    assert (task.crontab.hour, task.crontab.minute, task.queue) == ("3", "0", "maintenance")
    html = admin_browser.get("/admin/ops/retentionpolicy/").content.decode()
    assert f"/admin/django_celery_beat/periodictask/{task.pk}/change/" in html


def test_admin_delete_policy_removes_its_schedule(admin_browser):
    policy = retention.save_policy(RetentionPolicy(name="Doomed", target=RetentionTarget.BUG_REPORTS, max_age_days=5))
    task_id = policy.periodic_task_id
    response = admin_browser.post(f"/admin/ops/retentionpolicy/{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not RetentionPolicy.objects.filter(pk=policy.pk).exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()


def _edit_in_admin(admin_browser, policy: RetentionPolicy, **changes):
    form = {
        "name": policy.name,
        "target": policy.target,
        "max_age_days": policy.max_age_days,
        "enabled": "on" if policy.enabled else "",
        **changes,
    }
    response = admin_browser.post(f"/admin/ops/retentionpolicy/{policy.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    return PeriodicTask.objects.get(pk=policy.periodic_task_id)


def test_admin_renaming_a_policy_renames_its_schedule(admin_browser):
    policy = retention.save_policy(RetentionPolicy(name="Sweep", target=RetentionTarget.BUG_REPORTS, max_age_days=5))
    task = _edit_in_admin(admin_browser, policy, name="Weekly sweep")
    assert task.name == "Retention: Weekly sweep"
    assert task.description == "Runs the retention policy 'Weekly sweep' (see Operations › Retention policies)."
    assert PeriodicTask.objects.filter(name__startswith="Retention: Sweep").count() == 0


def test_renamed_schedule_keeps_clear_of_another_tasks_name(db):
    policy = retention.save_policy(RetentionPolicy(name="Sweep", target=RetentionTarget.BUG_REPORTS, max_age_days=5))
    every_hour, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    other = PeriodicTask.objects.create(name="Retention: Taken", task="some.task", interval=every_hour)
    policy.name = "Taken"
    retention.save_policy(policy)
    assert PeriodicTask.objects.get(pk=policy.periodic_task_id).name == f"Retention: Taken (policy #{policy.pk})"
    assert PeriodicTask.objects.get(pk=other.pk).name == "Retention: Taken"


def test_operator_description_survives_a_rename(db):
    policy = retention.save_policy(RetentionPolicy(name="Sweep", target=RetentionTarget.BUG_REPORTS, max_age_days=5))
    PeriodicTask.objects.filter(pk=policy.periodic_task_id).update(description="Ask Sam before changing.")
    policy.name = "Renamed"
    retention.save_policy(policy)
    task = PeriodicTask.objects.get(pk=policy.periodic_task_id)
    assert (task.name, task.description) == ("Retention: Renamed", "Ask Sam before changing.")


def test_admin_disabling_a_policy_disables_its_schedule(admin_browser):
    policy = retention.save_policy(RetentionPolicy(name="Sweep", target=RetentionTarget.BUG_REPORTS, max_age_days=5))
    changed_before = PeriodicTasks.last_change()
    task = _edit_in_admin(admin_browser, policy, enabled="")
    assert task.enabled is False
    assert PeriodicTasks.last_change() != changed_before  # a running beat reloads its schedule
    assert "(off: the policy is disabled)" in admin_browser.get("/admin/ops/retentionpolicy/").content.decode()
    policy.refresh_from_db()
    assert _edit_in_admin(admin_browser, policy, enabled="on").enabled is True


def test_a_new_disabled_policy_gets_a_disabled_schedule(db):
    policy = retention.save_policy(
        RetentionPolicy(name="Off", target=RetentionTarget.BUG_REPORTS, max_age_days=5, enabled=False)
    )
    task = PeriodicTask.objects.get(pk=policy.periodic_task_id)
    assert (task.name, task.enabled) == ("Retention: Off", False)


def test_admin_pages_show_results_without_paths(admin_browser, world, tmp_path):
    policy = make_policy(RetentionTarget.GENERATION_SCRATCH)
    run = purge(policy)
    html = admin_browser.get("/admin/ops/retentionpolicy/").content.decode()
    assert "removed 2 file(s), 0 row(s), 500" in html
    for page in (f"/admin/ops/retentionpolicy/{policy.pk}/change/", f"/admin/ops/purgerun/{run.pk}/change/"):
        response = admin_browser.get(page)
        assert response.status_code == 200 and str(tmp_path) not in response.content.decode()
    assert admin_browser.get("/admin/ops/purgerun/").status_code == 200


# --- A real worker ------------------------------------------------------------------------------


@pytest.mark.slow
def test_purge_runs_on_a_real_worker(db, media_root):
    from tests.processes import celery_worker

    shot = default_storage.save("bug_reports/old.png", ContentFile(b"p" * 40))
    report = BugReport.objects.create(report_id="bug_old", description="old", screenshot=shot)
    BugReport.objects.filter(pk=report.pk).update(created_at=timezone.now() - timedelta(days=365))
    policy = make_policy(RetentionTarget.BUG_REPORTS)
    with celery_worker(media_root=media_root) as worker:
        run = retention.start_purge(policy)
        deadline = time.monotonic() + 90
        while not run.is_final and time.monotonic() < deadline:
            time.sleep(0.25)
            run.refresh_from_db()
        assert run.status == JobStatus.SUCCEEDED, (run.error_message, worker.text[-2000:])
    assert (run.rows_removed, run.files_removed, run.bytes_freed) == (1, 1, 40)
    assert not BugReport.objects.exists() and not default_storage.exists(shot)
    assert str(media_root) not in worker.text


def test_orphaned_media_never_touches_what_is_not_an_app_media_folder(db, media_root, settings):
    """A deployment that puts its data dir, model cache or config under the media root loses nothing."""
    models_dir = media_root / "models" / "tiny-sd"
    kept = [
        write(models_dir / "model_index.json", days=100),
        write(media_root / "config.yaml", days=100),
        write(media_root / "imagineer.sqlite3", days=100),
    ]
    orphan = write(media_root / "images" / "2020" / "orphan.png", days=100)
    run = purge(make_policy(RetentionTarget.ORPHANED_MEDIA))
    assert run.status == JobStatus.SUCCEEDED, run.error_message
    assert not orphan.exists() and all(path.exists() for path in kept)
    assert run.files_removed == 1


def test_orphaned_media_keeps_training_logs_and_checkpoints_rows_name(db, media_root):
    from generation.models import DiffusionModel, ModelSource
    from training.models import TrainingCheckpoint, TrainingRun

    model = DiffusionModel.objects.create(name="m", source_type=ModelSource.DIFFUSERS_DIR, source="x")
    run = TrainingRun.objects.create(name="r", model=model, log_file="training/logs/run-1.log")
    TrainingCheckpoint.objects.create(run=run, step=5, file="training/checkpoints/kept.safetensors")
    kept = [
        write(media_root / "training" / "logs" / "run-1.log", days=100),
        write(media_root / "training" / "checkpoints" / "kept.safetensors", days=100),
    ]
    orphan = write(media_root / "training" / "checkpoints" / "left-by-a-crash.safetensors", days=100)
    run_ = purge(make_policy(RetentionTarget.ORPHANED_MEDIA))
    assert run_.status == JobStatus.SUCCEEDED, run_.error_message
    assert all(path.exists() for path in kept) and not orphan.exists()
