from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from imagineer.core import health
from imagineer.ops.admin.config import runtime_config_page

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/ops/runtime-config/", admin.site.admin_view(runtime_config_page), name="ops-runtime-config"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/", include("albums.api.urls")),
    path("api/", include("generation.api.urls")),
    path("api/", include("labeling.api.urls")),
    path("api/", include("training.api.urls")),
    path("api/", include("imagineer.ops.api.urls")),
]

handler400 = "imagineer.core.errors.handler400"
handler403 = "imagineer.core.errors.handler403"
handler404 = "imagineer.core.errors.handler404"
handler500 = "imagineer.core.errors.handler500"
