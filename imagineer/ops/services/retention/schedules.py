"""Retention policies and their schedules: each policy's django-celery-beat PeriodicTask.

The PeriodicTask follows its policy: it is named "Retention: <policy name>" and is enabled exactly
when the policy is, so renaming or disabling a policy in admin shows in *Periodic tasks* and in
beat. Its schedule (crontab, interval ...) is the operator's, edited on the PeriodicTask itself.
Changes go through PeriodicTask.save(), which tells a running beat to reload its schedule.
"""

from __future__ import annotations

import json
import re

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from imagineer.core.runtime_config import get_runtime_config
from imagineer.ops.models import RetentionPolicy

RUN_POLICY_TASK = "imagineer.ops.tasks.run_retention_policy"
DEFAULT_SCHEDULE = {"hour": "3", "minute": "0"}  # daily, UTC: a new policy's schedule
_DESCRIPTION = "Runs the retention policy '{}' (see Operations › Retention policies)."
# The description this module (and migration 0002) writes; one an operator wrote is left alone.
_OWN_DESCRIPTION = re.compile(r"Runs the retention policy '.*' \(see Operations › Retention policies\)\.", re.DOTALL)


def default_max_age_days(target: str) -> int:
    """The runtime config's default age for a new policy of `target`."""
    return getattr(get_runtime_config().retention, f"{target}_days")


def save_policy(policy: RetentionPolicy) -> RetentionPolicy:
    """Save a policy (age defaulted from the runtime config); a new one also gets its daily schedule.

    An existing policy's schedule follows it: renamed with it, enabled or disabled with it.
    """
    if policy.max_age_days is None:
        policy.max_age_days = default_max_age_days(policy.target)
    created = policy.pk is None
    with transaction.atomic():
        policy.save()
        if created:
            ensure_policy_schedule(policy)
        else:
            sync_policy_schedule(policy)
    return policy


def schedule_name(policy: RetentionPolicy) -> str:
    """The name of the policy's PeriodicTask: "Retention: <policy name>"."""
    return f"Retention: {policy.name}"


def _free_name(policy: RetentionPolicy, task: PeriodicTask | None = None) -> str:
    """The policy's task name, or (when another task already has it) that name with the policy's id."""
    name = schedule_name(policy)
    if task is not None and task.name in (name, f"{name} (policy #{policy.pk})"[:200]):
        return task.name  # already named after the policy: keep it rather than flip between the two
    taken = PeriodicTask.objects.filter(name=name)
    if task is not None:
        taken = taken.exclude(pk=task.pk)
    if taken.exists():
        name = f"{name} (policy #{policy.pk})"
    return name[:200]


def ensure_policy_schedule(policy: RetentionPolicy) -> PeriodicTask:
    """The policy's PeriodicTask (the one it has, one already calling it, or a new daily one), in
    line with the policy: named after it and enabled when it is."""
    args = json.dumps([policy.pk])
    with transaction.atomic():
        task = None
        if policy.periodic_task_id:
            task = PeriodicTask.objects.filter(pk=policy.periodic_task_id).first()
        if task is None:
            task = PeriodicTask.objects.filter(task=RUN_POLICY_TASK, args=args).first()
        if task is None:
            crontab = CrontabSchedule.objects.filter(
                **DEFAULT_SCHEDULE, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
            ).first() or CrontabSchedule.objects.create(
                **DEFAULT_SCHEDULE, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
            )
            task = PeriodicTask.objects.create(
                name=_free_name(policy),
                task=RUN_POLICY_TASK,
                crontab=crontab,
                args=args,
                queue="maintenance",
                enabled=policy.enabled,
                description=_DESCRIPTION.format(policy.name),
            )
        else:
            _follow_policy(task, policy)
        if policy.periodic_task_id != task.pk:
            RetentionPolicy.objects.filter(pk=policy.pk).update(periodic_task=task)
        policy.periodic_task = task
    return task


def sync_policy_schedule(policy: RetentionPolicy) -> PeriodicTask | None:
    """Bring the policy's PeriodicTask in line with the policy (name, description, enabled).

    None when the policy has no schedule: one an operator deleted is not brought back.
    """
    if not policy.periodic_task_id:
        return None
    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().filter(pk=policy.periodic_task_id).first()
        if task is not None:
            _follow_policy(task, policy)
    return task


def _follow_policy(task: PeriodicTask, policy: RetentionPolicy) -> None:
    name = _free_name(policy, task)
    description = task.description
    if _OWN_DESCRIPTION.fullmatch(description):
        description = _DESCRIPTION.format(policy.name)
    if (task.name, task.description, task.enabled) == (name, description, policy.enabled):
        return
    task.name, task.description, task.enabled = name, description, policy.enabled
    task.save()  # not a queryset update: save() marks the schedule changed, so a running beat reloads it


def delete_policy(policy: RetentionPolicy) -> None:
    """Delete a policy and its schedule (which would otherwise call a policy that is gone)."""
    with transaction.atomic():
        task_id = policy.periodic_task_id
        policy.delete()
        if task_id:
            PeriodicTask.objects.filter(pk=task_id, task=RUN_POLICY_TASK).delete()
