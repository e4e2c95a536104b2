"""`/api/training/runs/`: list and detail for everyone (public fields), the rest for admins.

Public: id, name, status, progress, dates, base model family, the resulting LoRA's public name.
Admin-only: albums, who started it, parameters, dataset counts, losses, errors, checkpoints, logs.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin, is_admin
from imagineer.core.ratelimits import enforce_rate_limit
from imagineer.core.responses import accepted, accepted_schema
from training import logs
from training.api.serializers.runs import TrainingLogSerializer, TrainingRunCreateSerializer, TrainingRunSerializer
from training.models import TrainingRun
from training.services import runs


class TrainingRunViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Training runs. Anyone lists them (public fields); admins start, cancel, retry and read logs."""

    serializer_class = TrainingRunSerializer
    filterset_fields = ["status"]

    def get_permissions(self):
        if self.request.method in SAFE_METHODS and self.action in ("list", "retrieve"):
            return []
        return [IsAdmin()]

    def get_queryset(self):
        query = TrainingRun.objects.select_related("model", "lora")
        if self.action in ("list", "retrieve") and not is_admin(self.request.user):
            return query
        return query.prefetch_related("albums", "checkpoints")

    @accepted_schema(TrainingRunSerializer, request=TrainingRunCreateSerializer)
    def create(self, request, *args, **kwargs):
        """Start a run (admin, 202). Refused with 400 for too few captions, 429 when busy or over the rate."""
        serializer = TrainingRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        enforce_rate_limit(request, group="training.start", rate=settings.IMAGINEER_TRAINING_START_RATE)
        run = runs.start_training_run(user=request.user, **serializer.validated_data)
        return accepted(run, TrainingRunSerializer, request)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued run at once; a running one's trainer is stopped (SIGTERM, grace, SIGKILL)."""
        run = jobs.cancel_job(self.get_object())
        return Response(self.get_serializer(run).data)

    @accepted_schema(TrainingRunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled run again, with the same parameters (same limits as a start)."""
        run = self.get_object()
        enforce_rate_limit(request, group="training.start", rate=settings.IMAGINEER_TRAINING_START_RATE)
        run = runs.retry_training_run(run, user=request.user)
        return accepted(run, TrainingRunSerializer, request)

    @extend_schema(
        parameters=[OpenApiParameter("offset", int, description="Byte offset: 0, then the last next_offset.")],
        responses=TrainingLogSerializer,
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """The trainer's output after `offset` (admin): poll with the returned next_offset to follow a run."""
        run = self.get_object()
        raw = request.query_params.get("offset", "0")
        if not raw.isdigit():
            raise logs.InvalidLogOffset("offset must be a whole number of bytes (0 to start).")
        chunk = logs.read_log(run, int(raw))
        complete = run.is_final and chunk.next_offset >= chunk.size
        return Response(
            {
                "run": run.pk,
                "status": run.status,
                "offset": chunk.offset,
                "next_offset": chunk.next_offset,
                "size": chunk.size,
                "lines": chunk.lines,
                "complete": complete,
            }
        )
