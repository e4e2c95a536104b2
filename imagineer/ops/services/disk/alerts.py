"""Disk alerts: each mount's alert state, and the e-mail and webhook that announce a crossing.

A mount at or above the threshold is "above". An alert (one e-mail, one Slack-compatible webhook
POST) goes out when a mount becomes above, not on each sample while it stays there. It re-arms once
the mount drops REARM_MARGIN_PERCENT points below the threshold. When no channel delivered, the
alert is tried again on the next sample. Messages name mounts by label, never by path.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from imagineer.core.logging import get_logger
from imagineer.core.runtime_config import get_runtime_config
from imagineer.ops.models import DiskAlertState, DiskSnapshot

# The package's name as it was before the split into modules and the move into services/: LOG_LEVELS
# entries and log searches know it so.
logger = get_logger("imagineer.ops.disk")

REARM_MARGIN_PERCENT = 2.0  # hysteresis: below threshold - margin, the next crossing alerts again


def update_alert_states(mounts: list[dict[str, Any]], threshold: float) -> tuple[set[str], list[dict], Any]:
    """Move each mount's DiskAlertState; claim the alerts to send (notified_at set before sending).

    Claiming under a row lock before anything is sent makes two snapshots racing (beat and "refresh")
    send one alert, and keeps the slow part (SMTP, webhook) outside the transaction.
    """
    now = timezone.now()
    crossed: set[str] = set()
    to_notify: list[dict[str, Any]] = []
    with transaction.atomic():
        for mount in mounts:
            label, percent = mount["mount"], mount["percent_used"]
            state, _ = DiskAlertState.objects.select_for_update().get_or_create(mount=label)
            if percent >= threshold:
                if not state.above_threshold:
                    state.above_threshold, state.crossed_at, state.notified_at = True, now, None
                    crossed.add(label)
                if state.notified_at is None:  # a new crossing, or one whose alert reached no one
                    state.notified_at = now
                    to_notify.append(mount)
            elif percent < threshold - REARM_MARGIN_PERCENT and state.above_threshold:
                state.above_threshold = False
                logger.info("disk.alert_rearmed", mount=label, percent_used=percent, threshold_percent=threshold)
            state.percent_used = percent
            state.save()
    return crossed, to_notify, now


def send_alerts(snapshot: DiskSnapshot, mounts: list[dict[str, Any]], claimed_at) -> None:
    """E-mail and webhook for the claimed mounts; when neither reached anyone, the claim is released."""
    subject, text = alert_message(snapshot, mounts)
    emailed = _send_alert_email(subject, text)
    posted = _post_alert_webhook(text)
    labels = [mount["mount"] for mount in mounts]
    if not (emailed or posted):
        # Nothing reached anyone: release the claim so the next sample tries again.
        DiskAlertState.objects.filter(mount__in=labels, notified_at=claimed_at).update(notified_at=None)
    logger.info("disk.alert_processed", mounts=labels, emailed=emailed, webhook=posted, snapshot_id=snapshot.pk)


def alert_message(snapshot: DiskSnapshot, mounts: list[dict[str, Any]]) -> tuple[str, str]:
    """Subject and text of an alert: labels, percentages and sizes; never a path."""
    threshold = snapshot.threshold_percent
    names = ", ".join(mount["mount"] for mount in mounts)
    subject = f"[Imagineer] Disk above {threshold:g}%: {names}"
    lines = []
    for mount in mounts:
        lines.append(
            f"Disk alert: mount {mount['mount']} is {mount['percent_used']:.1f}% full (threshold {threshold:g}%), "
            f"{filesizeformat(mount['free_bytes'])} free of {filesizeformat(mount['total_bytes'])}."
        )
        largest = sorted(
            (d for d in snapshot.directories if d["mount"] == mount["mount"] and d["size_bytes"]),
            key=lambda d: d["size_bytes"],
            reverse=True,
        )[:5]
        if largest:
            lines.append(
                "Largest monitored directories: "
                + ", ".join(f"{d['label']} {filesizeformat(d['size_bytes'])}" for d in largest)
                + "."
            )
    lines.append(
        f"Snapshot #{snapshot.pk} at {snapshot.taken_at:%Y-%m-%d %H:%M} UTC. "
        "Free space (Operations › Retention policies) or raise the threshold (runtime config disk.alert_threshold_percent)."
    )
    return subject, "\n".join(lines)


def alert_recipients() -> list[str]:
    """The config's disk.alert_emails, else every active staff user with an e-mail address."""
    configured = list(get_runtime_config().disk.alert_emails)
    if configured:
        return configured
    staff = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    return sorted(set(staff.values_list("email", flat=True)))


def _send_alert_email(subject: str, text: str) -> bool:
    recipients = alert_recipients()
    if not recipients:
        logger.warning("disk.alert_email_skipped", reason="no recipients (disk.alert_emails empty, no staff e-mail)")
        return False
    try:
        send_mail(subject, text, None, recipients, fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - any mail failure: the webhook and the snapshot go on
        logger.warning("disk.alert_email_failed", exc_type=type(exc).__name__, recipients=len(recipients))
        return False
    logger.info("disk.alert_email_sent", recipients=len(recipients))
    return True


def _post_alert_webhook(text: str) -> bool:
    url = settings.IMAGINEER_ALERT_WEBHOOK_URL
    if not url:
        return False
    try:
        response = httpx.post(url, json={"text": text}, timeout=settings.IMAGINEER_ALERT_WEBHOOK_TIMEOUT_SECONDS)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        # The URL is a credential: never logged.
        logger.warning("disk.alert_webhook_failed", status_code=exc.response.status_code)
        return False
    except httpx.HTTPError as exc:
        logger.warning("disk.alert_webhook_failed", exc_type=type(exc).__name__)
        return False
    logger.info("disk.alert_webhook_sent", status_code=response.status_code)
    return True
