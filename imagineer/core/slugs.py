from django.db.models import QuerySet
from django.utils.text import slugify


def unique_slug(queryset: QuerySet, name: str, *, fallback: str, max_length: int = 200) -> str:
    """A slug from `name` that no row of `queryset` has: `name`, `name-2`, `name-3` ..."""
    base = slugify(name)[: max_length - 10] or fallback
    slug, n = base, 2
    while queryset.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug
