"""The albums API's views: images (upload, file, thumbnail, flags), albums and their images, thumbnail jobs.

Routes that apps above albums add under `albums/{id}/` (label/, generate/) are theirs: see their api/urls.py.
"""

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Count
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from albums import image_files, services
from albums.api.filters import AlbumFilter, ImageFilter
from albums.api.serializers import (
    AlbumSerializer,
    BulkImageFlagsSerializer,
    ImageSerializer,
    ImageUpdateSerializer,
    ImageUploadResultSerializer,
    ImageUploadSerializer,
    ThumbnailJobSerializer,
    ThumbnailRebuildSerializer,
)
from albums.models import Album, Image, ThumbnailJob, visible_images_q
from imagineer.core import jobs, quotas
from imagineer.core.errors import NotFoundError
from imagineer.core.parsers import FileUploadParsersMixin
from imagineer.core.permissions import IsAdmin
from imagineer.core.ratelimits import enforce_rate_limit
from imagineer.core.responses import accepted, accepted_schema
from imagineer.core.serializers import ImageIdsSerializer

CACHE_PRIVATE = "private, no-store"


def _cache_control(image: Image) -> str:
    # Only what everyone may see goes to shared caches: an owner's private, NSFW or unchecked image never does.
    if not image.is_visible_to_everyone:
        return CACHE_PRIVATE
    return f"public, max-age={settings.IMAGINEER_BROWSER_CACHE_SECONDS}, s-maxage={settings.IMAGINEER_SHARED_CACHE_SECONDS}"


def _stream(image: Image, name: str, content_type: str, download_name: str) -> FileResponse:
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise NotFoundError("The file of this image is missing from storage.", code="file_missing") from exc
    response = FileResponse(handle, content_type=content_type, filename=download_name)
    response["Content-Disposition"] = f'inline; filename="{download_name}"'
    response["Cache-Control"] = _cache_control(image)
    response["ETag"] = f'"{image.sha256}"'
    response["X-Content-Type-Options"] = "nosniff"
    # Originals are served as sent, trailing bytes of a polyglot included: opened on their own, they
    # are a sandboxed document that may load and run nothing (inline style: the browser's image viewer).
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


class ImageViewSet(FileUploadParsersMixin, viewsets.ModelViewSet):
    """Images. Anonymous and non-admin users see public, non-NSFW images whose NSFW check has passed (or
    was never needed), plus a signed-in user's own; admins see all.

    The upload (create) takes multipart/form-data only; every other write JSON only.
    """

    filterset_class = ImageFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return Image.objects.visible_to(self.request.user)

    def get_serializer_class(self):
        if self.action == "create":
            return ImageUploadSerializer
        if self.action == "partial_update":
            return ImageUpdateSerializer
        return ImageSerializer

    @extend_schema(
        request={"multipart/form-data": ImageUploadSerializer},
        responses={
            201: ImageUploadResultSerializer,
            200: OpenApiResponse(ImageUploadResultSerializer, "Identical file already stored"),
        },
    )
    def create(self, request, *args, **kwargs):
        """Upload one image (admin). 201 when stored; 200 with the existing image when identical bytes are already stored."""
        enforce_rate_limit(request, group="images.upload", rate=settings.IMAGINEER_UPLOAD_RATE)
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > settings.IMAGINEER_UPLOAD_MAX_BYTES + 1024 * 1024:
            # Refuse before reading a body that is bound to be too large.
            limit = settings.IMAGINEER_UPLOAD_MAX_BYTES
            raise image_files.ImageTooLarge(
                f"The upload is larger than the {image_files.describe_byte_limit(limit)} limit.",
                details={"max_bytes": limit},
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data.pop("file")
        # An upload is an image made today: it counts against the uploader's daily image quota.
        with quotas.admit(request.user, images=1, jobs=0):
            image, created = services.store_image(
                upload, original_filename=upload.name or "", user=request.user, **data
            )
        context = {**self.get_serializer_context(), "duplicate": not created}
        body = ImageUploadResultSerializer(image, context=context).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses=ImageSerializer)
    def partial_update(self, request, *args, **kwargs):
        image = self.get_object()
        serializer = ImageUpdateSerializer(image, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        image = services.update_image(image, user=request.user, **serializer.validated_data)
        return Response(ImageSerializer(image, context=self.get_serializer_context()).data)

    def perform_destroy(self, instance):
        services.delete_image(instance)

    @extend_schema(responses={(200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The image bytes")})
    @action(detail=True, methods=["get"], url_path="file", url_name="file")
    def file(self, request, pk=None):
        image = self.get_object()
        ext = image_files.ACCEPTED_FORMATS.get(image.format, "bin")
        return _stream(
            image,
            image.file.name,
            image_files.CONTENT_TYPES.get(image.format, "application/octet-stream"),
            f"image-{image.pk}.{ext}",
        )

    @extend_schema(responses={(200, "image/webp"): OpenApiResponse(OpenApiTypes.BINARY, description="WebP thumbnail")})
    @action(detail=True, methods=["get"], url_path="thumbnail", url_name="thumbnail")
    def thumbnail(self, request, pk=None):
        image = self.get_object()
        if not image.thumbnail.name or not default_storage.exists(image.thumbnail.name):
            try:
                services.build_thumbnail(image)  # made lazily for images stored before thumbnails existed
            except FileNotFoundError as exc:
                raise NotFoundError("The file of this image is missing from storage.", code="file_missing") from exc
        return _stream(image, image.thumbnail.name, "image/webp", f"image-{image.pk}-thumbnail.webp")

    @extend_schema(request=BulkImageFlagsSerializer, responses={200: OpenApiResponse(description='{"updated": N}')})
    @action(detail=False, methods=["post"], url_path="bulk-flags", permission_classes=[IsAdmin])
    def bulk_flags(self, request):
        """Set is_nsfw and/or is_public on many images at once (admin). All ids must exist."""
        serializer = BulkImageFlagsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        updated = services.set_image_flags(
            data["image_ids"], is_nsfw=data.get("is_nsfw"), is_public=data.get("is_public"), user=request.user
        )
        return Response({"updated": updated})

    @accepted_schema(ThumbnailJobSerializer, request=ThumbnailRebuildSerializer)
    @action(detail=False, methods=["post"], url_path="rebuild-thumbnails", permission_classes=[IsAdmin])
    def rebuild_thumbnails(self, request):
        """Queue a job that rebuilds thumbnails for image_ids or for every image of an album (admin)."""
        serializer = ThumbnailRebuildSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ids = data.get("image_ids") or list(data["album"].album_images.values_list("image_id", flat=True))
        job = services.start_thumbnail_rebuild(ids, user=request.user)
        return accepted(job, ThumbnailJobSerializer, request)


@extend_schema_view(
    destroy=extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(description="album_in_use: a set template that set runs were made from."),
        }
    )
)
class AlbumViewSet(viewsets.ModelViewSet):
    """Albums. Non-admins see public albums, and inside them only images they may see."""

    serializer_class = AlbumSerializer
    filterset_class = AlbumFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        user = self.request.user
        condition = visible_images_q(user, prefix="album_images__image__")
        count = Count("album_images", filter=condition) if condition is not None else Count("album_images")
        return Album.objects.visible_to(user).annotate(image_count=count).order_by("-created_at", "-id")

    def perform_create(self, serializer):
        slug = serializer.validated_data.get("slug") or services.unique_album_slug(serializer.validated_data["name"])
        album = serializer.save(created_by=self.request.user, slug=slug)
        serializer.instance = self.get_queryset().get(pk=album.pk)  # with image_count

    def perform_update(self, serializer):
        album = serializer.save()
        serializer.instance = self.get_queryset().get(pk=album.pk)

    def perform_destroy(self, instance):
        services.delete_album(instance)

    def _album_images(self, album):
        return (
            Image.objects.visible_to(self.request.user)
            .filter(album_links__album=album)
            .order_by("album_links__sort_order", "album_links__id")
        )

    @extend_schema(responses=AlbumSerializer)
    def retrieve(self, request, *args, **kwargs):
        """The album with its image count and the first page of its images (`?page_size=`)."""
        album = self.get_object()
        page = self.paginate_queryset(self._album_images(album))
        images = self.get_paginated_response(
            ImageSerializer(page, many=True, context=self.get_serializer_context()).data
        )
        return Response({**self.get_serializer(album).data, "images": images.data})

    @extend_schema(methods=["GET"], responses=ImageSerializer(many=True))
    @extend_schema(
        methods=["POST"], request=ImageIdsSerializer, responses={200: OpenApiResponse(description='{"added": N}')}
    )
    @action(detail=True, methods=["get", "post"], url_path="images", url_name="images")
    def images(self, request, pk=None):
        """GET: the album's images in order, paginated. POST (admin): append image_ids."""
        album = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(self._album_images(album))
            return self.get_paginated_response(
                ImageSerializer(page, many=True, context=self.get_serializer_context()).data
            )
        serializer = ImageIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        added = services.add_images_to_album(album, serializer.validated_data["image_ids"], user=request.user)
        return Response({"added": added})

    @extend_schema(request=ImageIdsSerializer, responses={200: OpenApiResponse(description='{"removed": N}')})
    @action(detail=True, methods=["post"], url_path="images/remove")
    def remove_images(self, request, pk=None):
        """Remove image_ids from the album (admin). The images are kept."""
        album = self.get_object()
        serializer = ImageIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        removed = services.remove_images_from_album(album, serializer.validated_data["image_ids"])
        return Response({"removed": removed})

    @extend_schema(request=ImageIdsSerializer, responses={200: OpenApiResponse(description='{"reordered": N}')})
    @action(detail=True, methods=["post"], url_path="reorder")
    def reorder(self, request, pk=None):
        """Put image_ids in this order within the positions they occupy (admin). Every id must be in the album."""
        album = self.get_object()
        serializer = ImageIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = serializer.validated_data["image_ids"]
        services.reorder_album(album, ids)
        return Response({"reordered": len(ids)})


class ThumbnailJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Thumbnail rebuild jobs (admin)."""

    serializer_class = ThumbnailJobSerializer
    permission_classes = [IsAdmin]
    queryset = ThumbnailJob.objects.all()

    @extend_schema(request=None, responses=ThumbnailJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = jobs.cancel_job(get_object_or_404(ThumbnailJob, pk=pk))
        return Response(self.get_serializer(job).data)
