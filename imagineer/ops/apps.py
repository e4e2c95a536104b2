from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Keeping the system healthy: retention policies, disk usage, bug reports, runtime config views."""

    name = "imagineer.ops"
    label = "ops"
    verbose_name = "Operations"
