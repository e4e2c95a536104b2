"""Sign-in hooks: Google via allauth, admins named by e-mail, who may sign up, deactivation.

A user whose *verified* e-mail is in IMAGINEER_ADMIN_EMAILS becomes an admin (staff and
superuser) when they sign in. Removing an address from the list does not demote anyone: demotion is
an explicit act in the admin, so a typo in the environment cannot lock every operator out.

Who gets an account at a first sign-in is decided in imagineer.core.signup; the adapters here only
hand it allauth's data.
"""

from __future__ import annotations

from functools import partial
from importlib import import_module

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.signals import user_logged_in
from allauth.core.exceptions import SignupClosedException
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.authtoken.models import Token

from imagineer.core import signup
from imagineer.core.logging import get_logger

logger = get_logger(__name__)


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        # No local sign-up form: people arrive through Google; operators create local users.
        return False


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        return signup.may_sign_up(sociallogin.email_addresses)

    def save_user(self, request, sociallogin, form=None):
        try:
            return signup.create_account(
                partial(super().save_user, request, sociallogin, form), sociallogin.email_addresses
            )
        except signup.SignupRefused:
            raise SignupClosedException from None  # allauth shows the "sign-up is closed" page


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


# --- Deactivation ------------------------------------------------------------------------------


def deactivate_user(user, *, by=None) -> None:
    """Sign the user out everywhere and keep them out until reactivated.

    `is_active=False` is what refuses them at once: Django's backends drop an inactive user's
    session on its next request, DRF's TokenAuthentication refuses their token, allauth refuses
    their next sign-in. Their tokens and sessions are deleted as well, so that reactivating them
    later does not bring back a token or browser session that may have been the reason for this.
    """
    with transaction.atomic():
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        tokens, _ = Token.objects.filter(user_id=user.pk).delete()
        ended = end_sessions(user)
    user.is_active = False
    logger.info(
        "auth.user_deactivated",
        user_id=user.pk,
        by_user_id=getattr(by, "pk", None),
        tokens_deleted=tokens,
        sessions_ended=ended,
    )


def reactivate_user(user, *, by=None) -> None:
    """Let the user sign in again (with a new session; API tokens must be made anew)."""
    get_user_model().objects.filter(pk=user.pk).update(is_active=True)
    user.is_active = True
    logger.info("auth.user_reactivated", user_id=user.pk, by_user_id=getattr(by, "pk", None))


def end_sessions(user) -> int:
    """Delete the user's unexpired sessions; how many. Only database-backed session engines can be
    searched; with another engine the sessions stay, and `is_active=False` is what refuses them."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    # Sessions are stored encoded: each is decoded to find its user. Few enough on this site.
    ended = 0
    for session in store_class.get_model_class().objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get(SESSION_KEY)) == str(user.pk):
            store_class(session.session_key).delete()
            ended += 1
    return ended
