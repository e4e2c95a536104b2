"""The real URLconf plus views that fail on purpose, for the 500 envelope tests."""

from django.conf import settings
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

from imagineer.urls import urlpatterns as real_urlpatterns


@api_view(["GET"])
@permission_classes([AllowAny])
def drf_failure(request):
    raise RuntimeError(f"could not open {settings.MEDIA_ROOT}/secret/file.png")


def plain_failure(request):
    raise ValueError(f"broken at {settings.DATA_DIR}")


urlpatterns = [
    path("api/test-failures/drf", drf_failure),
    path("api/test-failures/plain", plain_failure),
    *real_urlpatterns,
]

handler404 = "imagineer.core.errors.handler404"
handler500 = "imagineer.core.errors.handler500"
