from django.contrib import admin
from django.urls import include, path, re_path

from imagineer.core import account, health
from imagineer.core.routers import ApiRootView
from imagineer.core.schema_views import RedocView, SchemaView, SwaggerView
from imagineer.ops.admin.config import runtime_config_page

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/ops/runtime-config/", admin.site.admin_view(runtime_config_page), name="ops-runtime-config"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # allauth's sign-in API for a browser frontend on another origin (session + CSRF; docs/SECURITY.md).
    # Not served: allauth 65.21's phone endpoints answer 500 (we keep no phone numbers), and the
    # ID-token sign-in is a second Google door no frontend of ours uses.
    re_path(
        r"^_allauth/browser/v1/(?:account/phone|auth/phone/verify(?:/resend)?|auth/provider/token)/?$",
        account.not_served,
    ),
    path("_allauth/", include("allauth.headless.urls")),
    # The API: trailing slash optional everywhere (imagineer.core.routers), one root listing it all.
    re_path(r"^api/?$", ApiRootView.as_view(), name="api-root"),
    re_path(r"^api/schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SwaggerView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/redoc/?$", RedocView.as_view(url_name="schema"), name="api-redoc"),
    re_path(r"^api/auth/me/?$", account.MeView.as_view(), name="auth-me"),
    re_path(r"^api/auth/csrf/?$", account.CsrfTokenView.as_view(), name="auth-csrf"),
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
