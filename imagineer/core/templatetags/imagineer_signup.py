"""What the sign-up pages tell people: the sign-up mode and whom to ask for an account."""

from django import template
from django.conf import settings

register = template.Library()

DEFAULT_CONTACT = "an administrator of this site"


@register.simple_tag
def signup_policy() -> dict[str, str]:
    """`{% signup_policy as policy %}`: policy.mode (IMAGINEER_SIGNUP) and policy.contact
    (IMAGINEER_SIGNUP_CONTACT, or "an administrator of this site" when it is empty)."""
    return {
        "mode": settings.IMAGINEER_SIGNUP,
        "contact": settings.IMAGINEER_SIGNUP_CONTACT.strip() or DEFAULT_CONTACT,
    }
