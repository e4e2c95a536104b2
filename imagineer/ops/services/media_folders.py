"""The register of media storage's top-level folders: one list for the two ops services that walk
media, the retention targets (the orphaned-media purge) and the disk snapshots.

albums (images/, thumbnails/), generation (loras/), the legacy importer (legacy/, and
thumbnails/legacy/), bug reports (bug_reports/) and training runs (training/: logs, checkpoints).
A new kind of stored file gets its folder here, or the orphaned-media purge will never look at it
(and disk stats lists it as "other").
"""

MEDIA_SUBFOLDERS = ("images", "thumbnails", "loras", "legacy", "bug_reports", "training")
