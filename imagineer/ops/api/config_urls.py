"""URLs of the runtime config API (admin)."""

from django.urls import re_path

from imagineer.ops.api import config_views

urlpatterns = [
    re_path(r"^admin/config/?$", config_views.ConfigView.as_view(), name="admin-config"),
    re_path(r"^admin/config/cache/?$", config_views.ConfigCacheView.as_view(), name="admin-config-cache"),
    re_path(r"^admin/config/reload/?$", config_views.ConfigReloadView.as_view(), name="admin-config-reload"),
]
