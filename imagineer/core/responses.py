"""Followable asynchronous work: a 202 names the job it started.

Every endpoint that starts (or retries) a job answers 202 Accepted with the job, its `url` in the
body and the same URL in `Location`, so a client follows it without knowing the job kind's route.
`accepted` builds that answer and `accepted_schema` declares it, for every job kind alike.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from imagineer.core.models import AbstractJob
from imagineer.core.serializers import JobSerializer

LOCATION_HEADER = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    required=True,
    response=[status.HTTP_202_ACCEPTED],
    description="The started job's own URL (the body's `url`): GET it to follow the job.",
)


def accepted(job: AbstractJob, serializer_class: type[JobSerializer], request: Request, **context: Any) -> Response:
    """202 with the job, and `Location` = its absolute `url`."""
    data = serializer_class(job, context={"request": request, **context}).data
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


def accepted_schema(job_serializer: type[JobSerializer], *, request: Any = None, **kwargs: Any):
    """extend_schema for an operation answered by `accepted`: the 202 body and its Location header."""
    return extend_schema(
        request=request,
        responses={202: OpenApiResponse(job_serializer, description="Queued: follow the job at `Location`.")},
        parameters=[LOCATION_HEADER, *kwargs.pop("parameters", [])],
        **kwargs,
    )
