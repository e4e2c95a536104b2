"""Operations API: /api/admin/config/*, /api/admin/disk-stats, /api/bug-reports."""

from imagineer.ops.api.bug_report_urls import urlpatterns as bug_report_urls
from imagineer.ops.api.config_urls import urlpatterns as config_urls
from imagineer.ops.api.disk_urls import urlpatterns as disk_urls

urlpatterns = [*config_urls, *disk_urls, *bug_report_urls]
