from imagineer.core import jobs
from labeling import services
from labeling.models import LabelingRun


def run_now(run: LabelingRun) -> LabelingRun:
    """Run a queued labeling run in this process, through the real job lifecycle."""
    jobs.run_job(LabelingRun, run.pk, services.run_labeling_run)
    run.refresh_from_db()
    return run


def label_snapshot(image) -> list[tuple]:
    """Everything a labeler may change on an image, to show that a failure changed nothing."""
    image.refresh_from_db()
    labels = sorted(image.labels.values_list("label_type", "text", "source", "source_model"))
    results = sorted(image.labeler_results.values_list("labeler", "nsfw_rating"))
    return [labels, results, image.is_nsfw, image.nsfw_rating, image.nsfw_flag_source, image.nsfw_changes.count()]
