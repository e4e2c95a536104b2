"""Roles and requests of the security suites: who asks, a request whose writes are rolled back, and the
ids that exist for no object."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from rest_framework.test import APIClient

ROLES = ("anon", "user", "other", "admin")


@dataclass
class Roles:
    users: dict
    clients: dict[str, APIClient]


def answer_and_forget(client: APIClient, method: str, path: str, data=None, *, format: str = "json"):
    """Send one request, then roll back every row it wrote.

    Each request then meets the same world, whatever ran before it; and the on_commit hooks it
    registered (enqueue_job's task send) are discarded with the savepoint, so no job ever reaches
    a broker or a worker.
    """
    with transaction.atomic():
        if method == "GET":
            response = client.get(path)
        else:
            response = getattr(client, method.lower())(path, data, format=format)
        if response.streaming:
            # Read to the end: the test client's wrapper then closes the open file (close() itself
            # would fire request_finished, which closes the test's database connection).
            response.content_bytes = b"".join(response.streaming_content)
        transaction.set_rollback(True)
    return response


# Ids that exist for no object: a hidden object must answer exactly what these answer.
MISSING = {"model": "no-such-model", "bug_report": "bug_20300101_000000_nothing"}
MISSING_ID = 987654321
