"""Default retention policies and their daily schedules, plus the disk snapshot schedule.

They are rows (django-celery-beat PeriodicTask, RetentionPolicy), not code, so operators change
ages, hours and intervals in admin. Orphaned-media removal starts as a dry run: its first results
show what it would delete before anyone lets it.
"""

import json

from django.db import migrations

# (name, target, max age in days, dry run, hour, minute): the runtime config's retention defaults.
DEFAULT_POLICIES = [
    ("Generation scratch", "generation_scratch", 2, False, 3, 0),
    ("Orphaned media files", "orphaned_media", 7, True, 3, 10),
    ("Scraped images in no album", "scraped_unalbumed", 30, False, 3, 20),
    ("Training scratch and logs", "training_artifacts", 30, False, 3, 30),
    ("Bug reports", "bug_reports", 90, False, 3, 40),
    ("Old disk snapshots", "disk_snapshots", 90, False, 3, 50),
]
DISK_SNAPSHOT_TASK = "Disk usage snapshot"


def create_defaults(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    RetentionPolicy = apps.get_model("ops", "RetentionPolicy")

    for name, target, days, dry_run, hour, minute in DEFAULT_POLICIES:
        policy, created = RetentionPolicy.objects.get_or_create(
            name=name, defaults={"target": target, "max_age_days": days, "dry_run": dry_run}
        )
        if not created:
            continue
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=str(minute), hour=str(hour), day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        policy.periodic_task = PeriodicTask.objects.create(
            name=f"Retention: {name}",
            task="imagineer.ops.tasks.run_retention_policy",
            crontab=crontab,
            args=json.dumps([policy.pk]),
            queue="maintenance",
            description=f"Runs the retention policy '{name}' (see Operations › Retention policies).",
        )
        policy.save(update_fields=["periodic_task"])

    every_six_hours, _ = IntervalSchedule.objects.get_or_create(every=6, period="hours")
    PeriodicTask.objects.get_or_create(
        name=DISK_SNAPSHOT_TASK,
        defaults={
            "task": "imagineer.ops.tasks.take_disk_snapshot",
            "interval": every_six_hours,
            "queue": "maintenance",
            "description": "Measures mounts and monitored directories; alerts when a mount passes the threshold.",
        },
    )


def remove_defaults(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    RetentionPolicy = apps.get_model("ops", "RetentionPolicy")
    names = [name for name, *_ in DEFAULT_POLICIES]
    PeriodicTask.objects.filter(name__in=[f"Retention: {name}" for name in names] + [DISK_SNAPSHOT_TASK]).delete()
    RetentionPolicy.objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_defaults, remove_defaults)]
