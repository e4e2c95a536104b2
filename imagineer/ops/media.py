"""The folders of media storage the app writes into, one place for every part that walks media.

albums (images/, thumbnails/), generation (loras/), the legacy importer (legacy/, and
thumbnails/legacy/), bug reports (bug_reports/) and training runs (training/: logs, checkpoints). A new kind of stored file gets its folder here,
or the orphaned-media purge will never look at it (and disk stats lists it as "other").
"""

MEDIA_SUBFOLDERS = ("images", "thumbnails", "loras", "legacy", "bug_reports", "training")
