from django.conf import settings
from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N&page_size=M`; page_size capped by IMAGINEER_MAX_PAGE_SIZE."""

    page_size = settings.IMAGINEER_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = settings.IMAGINEER_MAX_PAGE_SIZE
