"""The signed-in user as the API sees them: who they are, their quotas, their rate limits; a CSRF token.

GET /api/auth/me    the signed-in user (token or session): id, e-mail, name, is_admin, quotas with
                    the current use, rate-limit state. 401 in the envelope when not signed in.
GET /api/auth/csrf  a CSRF token (and the csrftoken cookie) for a browser frontend that signs in
                    with a session: it sends the token back in X-CSRFToken on every unsafe request.
                    A page on another origin (IMAGINEER_CORS_ALLOWED_ORIGINS) cannot read this
                    site's cookies, so the token comes in the body; CORS lets only allowed origins read it.
"""

from __future__ import annotations

from django.http import Http404
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from imagineer.core import quotas
from imagineer.core.permissions import is_admin
from imagineer.core.ratelimits import rate_limit_state


class QuotaStateSerializer(serializers.Serializer):
    limit = serializers.IntegerField(allow_null=True, help_text="null: no limit.")
    used = serializers.FloatField()
    remaining = serializers.FloatField(allow_null=True, help_text="null: no limit.")


class QuotasSerializer(serializers.Serializer):
    exempt = serializers.BooleanField(help_text="Quotas do not apply to this user (admins, unless set otherwise).")
    day_resets_at = serializers.DateTimeField(help_text="When the daily quotas start afresh.")
    images_per_day = QuotaStateSerializer(help_text="Images made today, and those queued jobs will still make.")
    concurrent_jobs = QuotaStateSerializer(help_text="Jobs queued or running now.")
    gpu_seconds_per_day = QuotaStateSerializer(help_text="Inference time of jobs finished today.")


class RateLimitStateSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="What is limited, e.g. generation.jobs.")
    rate = serializers.CharField(help_text='The limit as "count/period", e.g. 10/m.')
    limit = serializers.IntegerField()
    used = serializers.IntegerField(help_text="Requests counted in the current window.")
    remaining = serializers.IntegerField()
    resets_in_seconds = serializers.IntegerField()


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField(allow_blank=True)
    name = serializers.CharField(allow_blank=True, help_text="First and last name, as Google gave them.")
    is_admin = serializers.BooleanField()
    quotas = QuotasSerializer()
    rate_limits = RateLimitStateSerializer(many=True)


class CsrfTokenSerializer(serializers.Serializer):
    csrf_token = serializers.CharField(help_text="Send it back in the X-CSRFToken header.")


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(tags=["auth"], responses={200: MeSerializer}, summary="The signed-in user, quotas and rate limits")
    def get(self, request):
        user = request.user
        body = {
            "id": user.pk,
            "username": user.get_username(),
            "email": user.email,
            "name": user.get_full_name(),
            "is_admin": is_admin(user),
            "quotas": quotas.quota_report(user),
            "rate_limits": rate_limit_state(request),
        }
        return Response(MeSerializer(body).data)


@method_decorator(ensure_csrf_cookie, name="dispatch")
class CsrfTokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(tags=["auth"], responses={200: CsrfTokenSerializer}, summary="A CSRF token for session sign-in")
    def get(self, request):
        return Response({"csrf_token": get_token(request)})


def not_served(request, *args, **kwargs):
    """A route of a library we do not offer: the same 404 as a path that does not exist."""
    raise Http404
