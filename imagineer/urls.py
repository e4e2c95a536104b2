from django.contrib import admin
from django.urls import include, path, re_path

from imagineer.core import health
from imagineer.core.routers import ApiRootView
from imagineer.core.schema_views import RedocView, SchemaView, SwaggerView
from imagineer.ops.admin.config import runtime_config_page

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/ops/runtime-config/", admin.site.admin_view(runtime_config_page), name="ops-runtime-config"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # The API: trailing slash optional everywhere (imagineer.core.routers), one root listing it all.
    re_path(r"^api/?$", ApiRootView.as_view(), name="api-root"),
    re_path(r"^api/schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SwaggerView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/redoc/?$", RedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/", include("albums.api.urls")),
    path("api/", include("generation.api.urls")),
    path("api/", include("labeling.api.urls")),
    path("api/", include("training.api.urls")),
    path("api/", include("imagineer.ops.api.urls")),
    path("api/", include("legacy.api.urls")),
]

handler400 = "imagineer.core.errors.handler400"
handler403 = "imagineer.core.errors.handler403"
handler404 = "imagineer.core.errors.handler404"
handler500 = "imagineer.core.errors.handler500"
