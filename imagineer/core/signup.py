"""Who gets an account at their first Google sign-in, and the invitations that let people in.

IMAGINEER_SIGNUP decides, for a sign-in that has no account yet:

- `closed` (the default): addresses in IMAGINEER_ADMIN_EMAILS, and addresses with a valid invitation
  (not used, not expired);
- `allowlist`: those, and addresses in IMAGINEER_SIGNUP_EMAILS or whose domain is in
  IMAGINEER_SIGNUP_DOMAINS. The domain must match exactly: `example.com` does not admit
  `a@dept.example.com`, so listing a domain never admits every subdomain someone may create;
- `open`: anybody.

Only addresses the identity provider says are *verified* count, for every rule: an unverified
address is just text anybody could type into their Google profile. People who already have an
account are never asked (allauth only consults this for new accounts); deactivating them is the
way to keep them out (imagineer.core.auth.deactivate_user).

An unknown mode refuses everybody here (the system check in imagineer/core/checks.py stops the
site from starting with one).

The account and the invitations it uses are written in one transaction (`create_account`): of two
sign-ins racing for one invitation, one makes an account and the other is refused and leaves no
rows. A new account uses every valid invitation for its verified addresses, whatever admitted it,
so an invitation never stays "pending" for somebody who already has an account.

Log lines carry ids and reason codes, never an address (docs/LOGGING.md).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from imagineer.core.logging import get_logger
from imagineer.core.models import Invitation

logger = get_logger(__name__)

SIGNUP_MODES = ("closed", "allowlist", "open")
MAX_INVITE_DAYS = 365

U = TypeVar("U")


class OfferedAddress(Protocol):
    """An address as the identity provider hands it over (allauth's unsaved EmailAddress)."""

    email: str
    verified: bool


class SignupRefused(Exception):
    """The account was not made (an invitation it relied on was used by another sign-in meanwhile)."""


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    USED = "used", "Used"
    EXPIRED = "expired", "Expired"


# --- Who may sign up ---------------------------------------------------------------------------


def verified_addresses(addresses: Iterable[OfferedAddress]) -> set[str]:
    """The lower-cased addresses among `addresses` that the provider says are verified."""
    return {a.email.strip().lower() for a in addresses if a.verified and a.email and a.email.strip()}


def admitted_without_invitation(verified: set[str]) -> str | None:
    """Why the settings alone admit an owner of these verified addresses ("open", "admin_email",
    "allowlist_email", "allowlist_domain"); None when only an invitation could."""
    mode = settings.IMAGINEER_SIGNUP
    if mode == "open":
        return "open"
    if mode not in SIGNUP_MODES:
        return None
    if verified & set(settings.IMAGINEER_ADMIN_EMAILS):
        return "admin_email"
    if mode == "allowlist":
        if verified & set(settings.IMAGINEER_SIGNUP_EMAILS):
            return "allowlist_email"
        domains = set(settings.IMAGINEER_SIGNUP_DOMAINS)
        if any(address.rpartition("@")[2] in domains for address in verified):
            return "allowlist_domain"
    return None


def valid_invitations(verified: set[str], now: datetime.datetime | None = None) -> QuerySet[Invitation]:
    """Invitations not used and not expired for any of these addresses (compared without case)."""
    if not verified or settings.IMAGINEER_SIGNUP not in SIGNUP_MODES:
        return Invitation.objects.none()
    for_address = Q()
    for address in verified:
        for_address |= Q(email__iexact=address)
    return Invitation.objects.filter(for_address, used_at__isnull=True, expires_at__gt=now or timezone.now())


def may_sign_up(addresses: Iterable[OfferedAddress]) -> bool:
    """Whether a first sign-in offering `addresses` gets an account. Logs a refusal."""
    addresses = list(addresses)
    verified = verified_addresses(addresses)
    if admitted_without_invitation(verified) or valid_invitations(verified).exists():
        return True
    if settings.IMAGINEER_SIGNUP not in SIGNUP_MODES:
        reason = "unknown_mode"
    elif addresses and not verified:
        reason = "unverified_email"
    elif not addresses:
        reason = "no_email"
    else:
        reason = "not_invited"
    logger.info("auth.signup_refused", mode=settings.IMAGINEER_SIGNUP, reason=reason)
    return False


def create_account(save_user: Callable[[], U], addresses: Iterable[OfferedAddress]) -> U:
    """Make the account with `save_user()` and mark the invitations it uses, in one transaction.

    Raises SignupRefused (and leaves no rows) when the account is no longer admitted by then: the
    invitation it relied on was used by a sign-in that committed first.
    """
    verified = verified_addresses(addresses)
    with transaction.atomic():
        user = save_user()
        used = use_invitations(user, verified)
        admitted_by = admitted_without_invitation(verified)
        if not used and not admitted_by:
            logger.info("auth.signup_refused", mode=settings.IMAGINEER_SIGNUP, reason="invitation_taken")
            raise SignupRefused
    for invitation_id in used:
        logger.info("auth.invitation_used", invitation_id=invitation_id, user_id=user.pk)
    logger.info("auth.signup_admitted", user_id=user.pk, reason=admitted_by or "invitation")
    return user


def use_invitations(user, verified: set[str]) -> list[int]:
    """Mark every valid invitation for these addresses used by `user`; the ids this call marked.

    A conditional UPDATE: a row another transaction marked meanwhile no longer matches (PostgreSQL
    re-reads it after that transaction's lock; SQLite runs one writer at a time), so an invitation is
    used by one account only.
    """
    now = timezone.now()
    candidates = list(valid_invitations(verified, now).values_list("pk", flat=True))
    if not candidates:
        return []
    Invitation.objects.filter(pk__in=candidates, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now, used_by=user
    )
    return list(Invitation.objects.filter(pk__in=candidates, used_by=user).values_list("pk", flat=True))


# --- Invitations -------------------------------------------------------------------------------


def invitation_status(invitation: Invitation, now: datetime.datetime | None = None) -> InvitationStatus:
    if invitation.used_at is not None:
        return InvitationStatus.USED
    if invitation.expires_at <= (now or timezone.now()):
        return InvitationStatus.EXPIRED
    return InvitationStatus.PENDING


def with_status(status: str, now: datetime.datetime | None = None) -> Q:
    """The filter for invitations in `status` (an InvitationStatus value)."""
    now = now or timezone.now()
    if status == InvitationStatus.USED:
        return Q(used_at__isnull=False)
    if status == InvitationStatus.EXPIRED:
        return Q(used_at__isnull=True, expires_at__lte=now)
    return Q(used_at__isnull=True, expires_at__gt=now)


def expiry_after(days: int | None = None) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=days or settings.IMAGINEER_INVITE_DAYS)


def address_taken(email: str) -> bool:
    """Whether some account already has this address (as its e-mail or one of its addresses)."""
    return (
        get_user_model().objects.filter(email__iexact=email).exists()
        or EmailAddress.objects.filter(email__iexact=email).exists()
    )


def send_invitation(invitation: Invitation, sign_in_url: str) -> None:
    """E-mail the invited address how to sign in. Raises what the mail backend raises."""
    inviter = invitation.invited_by
    context = {
        "invitation": invitation,
        "inviter": (inviter.get_full_name() or inviter.get_username()) if inviter else "",
        "sign_in_url": sign_in_url,
    }
    subject = render_to_string("core/invitation_email_subject.txt", context).strip()
    body = render_to_string("core/invitation_email.txt", context)
    send_mail(subject, body, None, [invitation.email])
    logger.info("auth.invitation_sent", invitation_id=invitation.pk)


def renew(invitation: Invitation) -> bool:
    """Give an unused invitation a new expiry, IMAGINEER_INVITE_DAYS from now. False if it was used."""
    updated = Invitation.objects.filter(pk=invitation.pk, used_at__isnull=True).update(expires_at=expiry_after())
    invitation.refresh_from_db(fields=["expires_at", "used_at"])
    return bool(updated)


def revoke(invitation: Invitation, by=None) -> bool:
    """End an unused invitation now (it then shows as expired). False if it was used or had expired."""
    now = timezone.now()
    updated = Invitation.objects.filter(pk=invitation.pk, used_at__isnull=True, expires_at__gt=now).update(
        expires_at=now
    )
    if updated:
        logger.info("auth.invitation_revoked", invitation_id=invitation.pk, by_user_id=getattr(by, "pk", None))
    return bool(updated)
