"""Shapes of the disk stats API (imagineer.ops.services.disk builds the data; these fix and document it).

No field holds a filesystem path: directories and mounts are named by label.
"""

from rest_framework import serializers


class DiskMountSerializer(serializers.Serializer):
    total_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField()
    free_bytes = serializers.IntegerField(help_text="Space an unprivileged writer can still use.")
    percent_used = serializers.FloatField(help_text="used / (used + free) × 100, as df reports it.")
    above_threshold = serializers.BooleanField(help_text="percent_used ≥ the snapshot's threshold_percent.")


class DiskDirectorySerializer(serializers.Serializer):
    mount = serializers.CharField(allow_null=True, help_text="Label of the mount that holds it.")
    origin = serializers.ChoiceField(
        choices=["media", "builtin", "config", "database"],
        help_text="media: a media subfolder; builtin: model cache, training, scratch; config: "
        "disk.extra_directories; database: scraped images, summed from their rows.",
    )
    exists = serializers.BooleanField()
    size_bytes = serializers.IntegerField(help_text="Apparent size of the files (st_size), like du -sb.")
    file_count = serializers.IntegerField()
    dir_count = serializers.IntegerField(help_text="Subdirectories walked.")
    skipped_entries = serializers.IntegerField(help_text="Entries that could not be read or vanished mid-walk.")
    percent_of_mount = serializers.FloatField(help_text="size_bytes / the mount's total_bytes × 100.")
    complete = serializers.BooleanField(help_text="False: the walk hit its time limit; sizes are lower bounds.")


class DiskAlertSerializer(serializers.Serializer):
    type = serializers.CharField(help_text='Always "capacity" (the mount is at or above the threshold).')
    mount = serializers.CharField()
    percent_used = serializers.FloatField()
    threshold_percent = serializers.FloatField()
    new_crossing = serializers.BooleanField(help_text="This snapshot is the one that saw the mount cross.")


class DiskStatsSerializer(serializers.Serializer):
    snapshot_id = serializers.IntegerField(allow_null=True)
    taken_at = serializers.DateTimeField(allow_null=True, help_text="Null: no snapshot yet (see hint).")
    age_seconds = serializers.FloatField(allow_null=True)
    stale = serializers.BooleanField(help_text="Older than stale_after_seconds, or no snapshot at all.")
    stale_after_seconds = serializers.FloatField(help_text="Two periods of the snapshot schedule.")
    complete = serializers.BooleanField(help_text="Every walk finished within the time limit.")
    duration_seconds = serializers.FloatField(allow_null=True)
    threshold_percent = serializers.FloatField()
    mounts = serializers.DictField(child=DiskMountSerializer(), help_text="By mount label.")
    directories = serializers.DictField(child=DiskDirectorySerializer(), help_text="By directory label.")
    alerts = DiskAlertSerializer(many=True, help_text="Mounts at or above the threshold in this snapshot.")
    hint = serializers.CharField(allow_null=True, help_text="What to do when there is no snapshot yet.")


class DiskRefreshSerializer(serializers.Serializer):
    queued = serializers.BooleanField(help_text="False: a refresh was already requested within the last minute.")
    task_id = serializers.CharField(allow_null=True)
    message = serializers.CharField()
