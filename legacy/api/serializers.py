"""Shape of `/api/admin/import-runs/`: a run of `import_legacy_media`, in the job fields every job answers.

The run's source folders and manifest are server paths and the skipped files' names are the
source's: they stay in the admin console.
"""

from imagineer.core.serializers import JobSerializer
from legacy.models import ImportRun


class ImportRunSerializer(JobSerializer):
    detail_url_name = "import-run-detail"

    class Meta(JobSerializer.Meta):
        model = ImportRun
        fields = [
            *JobSerializer.Meta.fields,
            "mode",
            "limit",
            "files_seen",
            "imported_count",
            "already_present_count",
            "duplicate_count",
            "skipped_count",
            "orphan_sidecar_count",
            "albums_created",
            "albums_reused",
        ]
        read_only_fields = fields
