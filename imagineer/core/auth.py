"""Sign-in hooks: Google via allauth, admins named by e-mail.

A user whose *verified* e-mail is in IMAGINEER_ADMIN_EMAILS becomes an admin (staff and
superuser) when they sign in. Removing an address from the list does not demote anyone: demotion is
an explicit act in the admin, so a typo in the environment cannot lock every operator out.
"""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.signals import user_logged_in
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.dispatch import receiver

from imagineer.core.logging import get_logger

logger = get_logger(__name__)


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        # No local sign-up form: people arrive through Google; operators create local users.
        return False


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        return True


def promote_if_admin_email(user) -> bool:
    """Make the user an admin if one of their verified addresses is listed. True if promoted."""
    admin_emails = set(settings.IMAGINEER_ADMIN_EMAILS)
    if not admin_emails or (user.is_staff and user.is_superuser):
        return False
    verified = EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    if not any(email.lower() in admin_emails for email in verified):
        return False
    user.is_staff = True
    user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    logger.info("auth.admin_promoted", user_id=user.pk)
    return True


@receiver(user_logged_in)
def _promote_on_login(sender, request, user, **kwargs) -> None:
    promote_if_admin_email(user)
