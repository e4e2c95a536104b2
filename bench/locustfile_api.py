"""Locust users for bench/load_api.py (not run on its own: load_api.py seeds and starts everything).

Two kinds of traffic, chosen with locust's --tags:
- `baseline`: GET /healthz — the cheapest request Django answers (no database), the yardstick;
- `api`: the image list (a random page), image detail, thumbnail and job status, weighted like a
  gallery client: mostly lists and thumbnails.

The ids to ask for come from the environment (LOAD_IMAGE_IDS: a file of public image ids;
LOAD_JOB_ID, LOAD_TOKEN), written by load_api.py after seeding.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from locust import HttpUser, constant, tag, task

IMAGE_IDS = [int(x) for x in Path(os.environ["LOAD_IMAGE_IDS"]).read_text().split()]
PAGES = int(os.environ.get("LOAD_PAGES", "100"))
JOB_ID = os.environ["LOAD_JOB_ID"]
TOKEN = os.environ["LOAD_TOKEN"]


class ApiReader(HttpUser):
    wait_time = constant(0)  # closed loop: each user sends its next request as soon as one returns

    @tag("baseline")
    @task
    def healthz(self):
        self.client.get("/healthz", name="healthz (baseline)")

    @tag("api")
    @task(4)
    def image_list(self):
        self.client.get(f"/api/images/?page={random.randint(1, PAGES)}", name="image list")

    @tag("api")
    @task(3)
    def image_detail(self):
        self.client.get(f"/api/images/{random.choice(IMAGE_IDS)}/", name="image detail")

    @tag("api")
    @task(4)
    def thumbnail(self):
        self.client.get(f"/api/images/{random.choice(IMAGE_IDS)}/thumbnail", name="thumbnail")

    @tag("api")
    @task(2)
    def job_status(self):
        self.client.get(
            f"/api/generation/jobs/{JOB_ID}/", headers={"Authorization": f"Token {TOKEN}"}, name="job status"
        )
