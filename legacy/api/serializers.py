"""Shape of `/api/admin/import-runs/`: a run of `import_legacy_media`, in the job fields every job answers.

The run's source folders and manifest are server paths and the skipped files' names are the
source's: they stay in the admin console. So do the paths of symlinks the walk refused to follow
(and their targets are never recorded anywhere); the API says how many (`links_outside_count`) and
whether the run followed them (`follow_links_outside`, which only the command sets).
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
            "links_outside_count",
            "follow_links_outside",
            "albums_created",
            "albums_reused",
        ]
        read_only_fields = fields
