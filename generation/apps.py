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
