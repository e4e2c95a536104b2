"""Runtime config endpoints (admin): what the cache holds, a reload, the config in force.

GET  /api/admin/config          the config in force (every section, defaults included)
GET  /api/admin/config/cache    cache stats: cached, loaded_at, source, file mtimes, stale, last_error
POST /api/admin/config/reload   read the file now; 400 config_invalid naming each bad key (old config kept)

The file itself is edited on the server (or by config management): there is no write endpoint,
so the file stays the one source of truth and a bad edit can never be half-applied over HTTP.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from imagineer.core import runtime_config
from imagineer.core.permissions import IsAdmin
from imagineer.ops.api.serializers.config import ConfigCacheSerializer


class ConfigCacheView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(tags=["admin"], responses={200: ConfigCacheSerializer}, summary="Runtime config cache stats")
    def get(self, request):
        return Response(ConfigCacheSerializer(runtime_config.store.stats()).data)


class ConfigReloadView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        tags=["admin"],
        request=None,
        responses={
            200: ConfigCacheSerializer,
            400: OpenApiResponse(description="config_invalid: the file was refused; details name each bad key."),
        },
        summary="Reload the runtime config file now",
    )
    def post(self, request):
        runtime_config.store.reload()  # RuntimeConfigInvalid → 400 in the envelope
        return Response(ConfigCacheSerializer(runtime_config.store.stats()).data)


class ConfigView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        tags=["admin"],
        responses={
            200: OpenApiResponse(
                description="Every section of the config in force, defaults included (monitored directories by label only)."
            )
        },
        summary="The runtime config in force",
    )
    def get(self, request):
        config = runtime_config.get_runtime_config()
        return Response(config.model_dump(mode="json", exclude=runtime_config.SERVER_PATHS))
