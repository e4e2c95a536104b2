"""The three access levels used everywhere: public read, signed-in user, admin (is_staff).

Reads are open to everyone; what a reader can see is decided by each viewset's queryset
(`visible_to(user)`), so an object a user may not see is a 404 for them, never a 403 that would
confirm it exists. Writes need an admin.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_staff)


class AdminWriteVisibleRead(BasePermission):
    message = "Only admins can change this."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        if not request.user or not request.user.is_authenticated:
            return False  # DRF turns this into 401 with WWW-Authenticate
        if is_admin(request.user):
            return True
        # Non-admin write to one object: let get_object() answer 404 for what they cannot see,
        # then has_object_permission answers 403 for what they can.
        return (
            view.kwargs.get(getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")) is not None
        )

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or is_admin(request.user)


class IsAdmin(BasePermission):
    message = "Admin role required."

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)
