from rest_framework.routers import DefaultRouter


class ApiRouter(DefaultRouter):
    """Trailing slash optional (`/api/images/1/file` and `/file/` both work), no `.json` suffixes."""

    include_format_suffixes = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"
