"""Disk stats endpoints (admin): parse and authorise, call one function of imagineer.ops.services.disk.

GET  /api/admin/disk-stats           the latest snapshot, instantly, with its age
POST /api/admin/disk-stats/refresh   queue a snapshot now (202), for an operator who just freed space;
                                     no job row: its Location is the disk stats, which change once it is stored
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from imagineer.core.permissions import IsAdmin
from imagineer.ops.api.serializers.disk import DiskRefreshSerializer, DiskStatsSerializer
from imagineer.ops.services import disk

_AUTH_ERRORS = {
    401: OpenApiResponse(description="not_authenticated: sign in."),
    403: OpenApiResponse(description="permission_denied: admins only."),
}


class DiskStatsView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_disk_stats",
        responses={
            200: OpenApiResponse(
                DiskStatsSerializer,
                "The latest snapshot. With none yet: 200, taken_at null, stale true, empty mounts, and a hint.",
            ),
            **_AUTH_ERRORS,
        },
    )
    def get(self, request):
        """Per mount total/used/free/percent and per monitored directory size, from the latest snapshot."""
        return Response(DiskStatsSerializer(disk.latest_disk_stats()).data)


class DiskStatsRefreshView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_disk_stats_refresh",
        request=None,
        parameters=[
            OpenApiParameter(
                "Location",
                OpenApiTypes.URI,
                OpenApiParameter.HEADER,
                required=True,
                response=[202],
                description="The disk stats (GET): they show the new snapshot once it is stored.",
            )
        ],
        responses={
            202: OpenApiResponse(DiskRefreshSerializer, "Queued (or folded into a request of the last minute)."),
            503: OpenApiResponse(description="queue_unavailable: the task queue could not be reached."),
            **_AUTH_ERRORS,
        },
    )
    def post(self, request):
        """Queue a snapshot on the maintenance queue; GET disk-stats shows it once stored."""
        data = DiskRefreshSerializer(disk.request_snapshot()).data
        stats_url = reverse("admin-disk-stats", request=request)
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": stats_url})
