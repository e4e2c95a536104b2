"""Operations' use cases: `bug_reports`, `retention` (purge policies and runs) and `disk` (usage
snapshots and alerts); `media_folders` is the list of media folders the last two walk."""
