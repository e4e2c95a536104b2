"""Shape of `/api/admin/purge-runs/`: a run of a retention policy, in the job fields every job answers.

`details` (what a dry run would remove, what a real one could not) stays in the admin console: it
names stored files.
"""

from imagineer.core.serializers import JobSerializer
from imagineer.ops.models import PurgeRun


class PurgeRunSerializer(JobSerializer):
    detail_url_name = "purge-run-detail"

    class Meta(JobSerializer.Meta):
        model = PurgeRun
        fields = [
            *JobSerializer.Meta.fields,
            "policy",
            "target",
            "max_age_days",
            "dry_run",
            "include_album_images",
            "files_removed",
            "rows_removed",
            "bytes_freed",
        ]
        read_only_fields = fields
