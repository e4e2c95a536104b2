"""Admin page for the runtime config: what is in force, where it came from, why a file was refused.

Not a model: the page is routed in imagineer/urls.py through `admin.site.admin_view` (staff only)
and linked from the admin index. "Reload now" is a POST with the admin's CSRF token.
"""

import yaml
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from imagineer.core import runtime_config


@require_http_methods(["GET", "POST"])
def runtime_config_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            runtime_config.store.reload()
        except runtime_config.RuntimeConfigInvalid as exc:
            messages.error(request, f"{exc.message} The previous config stays in force.")
        else:
            messages.success(request, "The runtime config was reloaded.")
        return redirect(request.path)
    config = runtime_config.get_runtime_config()
    context = {
        **admin.site.each_context(request),
        "title": "Runtime config",
        "stats": runtime_config.store.stats(),
        "config_path": runtime_config.store.path,
        "config_yaml": yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
    }
    return TemplateResponse(request, "admin/ops/config/runtime_config.html", context)
