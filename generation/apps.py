from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from albums.api.serializers import register_set_prompt_rule
        from generation.pipeline.schedulers import check_scheduler_name
        from generation.sets import render_set_prompt
        from imagineer.core.runtime_config import register_field_check

        # The runtime config (imagineer.core) cannot know the schedulers: generation checks the name.
        register_field_check("generation", "scheduler", check_scheduler_name)
        # The album API previews a set template's prompts by generation's rule (albums cannot import it).
        register_set_prompt_rule(render_set_prompt)
        register_quota_meters()


def register_quota_meters() -> None:
    """Images and GPU time for the per-user quotas (imagineer.core.quotas counts, it cannot import us)."""
    from django.db.models import Count, F, Sum

    from albums.models import Image
    from generation.models import GenerationJob, SetRun
    from imagineer.core.models import JobStatus
    from imagineer.core.quotas import register_meter

    active = (JobStatus.QUEUED, JobStatus.RUNNING)

    def images(user, since) -> float:
        # Made today (every kind: generated, uploaded, scraped), plus what queued or running jobs
        # will still make: admitted work counts at once, so parallel requests cannot overshoot.
        made = Image.objects.filter(created_by=user, created_at__gte=since).count()
        jobs_to_make = (
            GenerationJob.objects.filter(created_by=user, status__in=active)
            .annotate(made=Count("images"))
            .aggregate(left=Sum(F("count") - F("made")))["left"]
        )
        runs_to_make = SetRun.objects.filter(created_by=user, status__in=active).aggregate(
            left=Sum(F("total_items") - F("completed_items") - F("failed_items"))
        )["left"]
        return made + max(0, jobs_to_make or 0) + max(0, runs_to_make or 0)

    def gpu_seconds(user, since) -> float:
        total = 0.0
        for kind in (GenerationJob, SetRun):
            spent = kind.objects.filter(created_by=user, finished_at__gte=since).aggregate(s=Sum("inference_seconds"))
            total += spent["s"] or 0.0
        return total

    register_meter("images", "generation", images)
    register_meter("gpu_seconds", "generation", gpu_seconds)
