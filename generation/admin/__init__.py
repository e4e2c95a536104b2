"""The operator console for generation, one module per resource: diffusion models, LoRAs,
generation jobs, set templates (albums' pages, extended) and set runs.

The admin only shapes forms and lists. Registering a LoRA goes through generation.registry, starting
or re-running a job through generation.services, and parameters are checked by the API's serializers,
so the console and the API apply the same checks and limits.
"""

from generation.admin import diffusion_models, jobs, loras, set_runs, set_templates  # noqa: F401
