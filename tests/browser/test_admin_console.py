"""An operator's afternoon in the admin, in a real browser against a real web server and worker.

Signs in with a password, writes a set template as CSV text, generates it on the tiny model,
reloads the set run's page until it has succeeded, marks one of its images NSFW from the image
changelist, opens the disk usage and runtime config pages, and then, from a browser context with no
cookies, checks that the public API no longer shows the NSFW image anywhere. Screenshots of every
step land under the test's tmp path and in artifacts/browser/.
"""

import re
import secrets
import time
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from generation import registry as generation_registry
from tests.browser.chromium import PageProblems, launched_chromium
from tests.browser.web_server import web_server
from tests.factories import make_job_row
from tests.processes import celery_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = ["kite", "lantern"]
THEME = "paper cut"
FINISH_SECONDS = 120


# An SVG cuts off text that runs past its width: the directory bars' values must end inside it.
BAR_VALUES_PAST_THE_EDGE = """() => {
    const svg = document.querySelector("#disk_directory_bars");
    const width = svg.viewBox.baseVal.width;
    return [...svg.querySelectorAll("text.bar-value")]
        .filter((text) => { const box = text.getBBox(); return box.x + box.width > width; })
        .map((text) => text.textContent);
}"""


@contextmanager
def screenshot_on_failure(page, screenshots):
    try:
        yield
    except BaseException:
        screenshots.take(page, "failure")
        raise


def fetch_json(page, url: str):
    """GET `url` from inside the page, so the page's own cookies (or none) go with it."""
    return page.evaluate(
        """async (url) => {
            const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
            return {status: response.status, body: response.ok ? await response.json() : null};
        }""",
        url,
    )


def fetch_statuses(page, urls: list[str]) -> dict[str, int]:
    return page.evaluate(
        """async (urls) => Object.fromEntries(await Promise.all(
            urls.map(async (url) => [url, (await fetch(url, {credentials: "same-origin"})).status])))""",
        urls,
    )


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME")


def create_set_template(page, base: str, model_id: int) -> None:
    page.goto(f"{base}/admin/albums/album/add/")
    page.fill("#id_name", "Browser lights")
    page.fill("#id_slug", "browser-lights")
    page.click("summary:has-text('Set template')")  # a collapsed fieldset on the add form
    page.check("#id_is_set_template")
    page.fill("#id_prompt_template", "a glowing {thing}")
    page.fill("#id_example_theme", THEME)
    page.fill("#id_width", "64")
    page.fill("#id_height", "64")
    page.select_option("#id_default_model", value=str(model_id))
    page.fill("#id_items_csv", "thing\n" + "\n".join(ROWS) + "\n")
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist li.success")


def run_set(page, shots) -> int:
    page.click("a.button:has-text('Generate this set')")
    page.wait_for_selector("#generate_set_form")
    assert page.input_value("#id_theme") == THEME  # the template's example theme
    page.fill("#id_steps", "2")
    page.fill("#id_seed", "7")
    shots.take(page, "generate-form")
    page.click("#generate_set_form input[type=submit]")
    page.wait_for_selector("ul.messagelist li.success")
    message = page.locator("ul.messagelist li.success").inner_text()
    assert f"{len(ROWS)} images" in message, message
    return int(re.search(r"set run #(\d+)", message).group(1))


def wait_until_succeeded(page, worker) -> str:
    """Reload the set run's page, as an operator would, until its status is final."""
    deadline = time.monotonic() + FINISH_SECONDS
    while True:
        status = page.locator(".field-status .readonly").inner_text().strip()
        if status in ("Succeeded", "Failed", "Cancelled"):
            return status
        assert time.monotonic() < deadline, f"set run still {status} after {FINISH_SECONDS}s:\n{worker.text[-3000:]}"
        time.sleep(1)
        page.reload()


def mark_nsfw_from_changelist(page, base: str, image_id: int) -> None:
    page.goto(f"{base}/admin/albums/image/")
    page.check(f"input.action-select[value='{image_id}']")
    page.select_option("select[name=action]", "mark_nsfw")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist li.success")
    assert page.locator("ul.messagelist li.success").inner_text() == "Updated 1 image(s)."


def nsfw_column(page, image_id: int) -> str:
    row = page.locator("#result_list tbody tr", has=page.locator(f"input.action-select[value='{image_id}']"))
    return row.locator("td.field-is_nsfw img").get_attribute("alt")


def open_disk_usage(page, base: str, worker, *, forbidden: list[str]) -> None:
    """From the admin index: take a snapshot, reload until the worker has stored it, check the page."""
    page.goto(f"{base}/admin/")
    page.click("#operations-pages a:has-text('Disk usage')")
    assert page.locator("h1").inner_text() == "Disk usage"
    page.click("#take_snapshot_form input[type=submit]")
    page.wait_for_selector("ul.messagelist li")
    deadline = time.monotonic() + 60
    while "Latest snapshot" not in page.locator("#take_snapshot_form").inner_text():
        assert time.monotonic() < deadline, f"no disk snapshot after 60s:\n{worker.text[-3000:]}"
        time.sleep(1)
        page.reload()
    assert page.locator("#disk_usage_chart polyline").count() >= 1  # a line per mount
    clipped = page.evaluate(BAR_VALUES_PAST_THE_EDGE)
    assert clipped == [], clipped
    html = page.content()
    assert [path for path in forbidden if path in html] == []  # labels only, never a filesystem path


def open_runtime_config(page, base: str) -> None:
    page.goto(f"{base}/admin/")
    page.click("#operations-pages a:has-text('Runtime config')")
    assert page.locator("h1").inner_text() == "Runtime config"
    in_force = page.locator("#runtime-config").inner_text()
    assert "set_run_batch_size: 3" in in_force, in_force  # the test's file, not the defaults


def open_celery_workers_and_a_job_no_worker_takes(page, base: str, run_id: int) -> None:
    """The worker this test runs reports itself alive; a training run, whose queue it does not
    consume, says so on the training runs page."""
    page.goto(f"{base}/admin/")
    page.click("a:has-text('Celery workers')")
    row = page.locator("#result_list tbody tr").first
    assert row.locator(".field-state").inner_text() == "Alive"
    assert row.locator(".field-queue_list").inner_text() == "default, generation, labeling, maintenance"
    page.goto(f"{base}/admin/training/trainingrun/")
    status = page.locator("#result_list tbody tr").first.inner_text()
    assert f"{run_id}" in status and "no worker consumes queue training" in status, status
    page.goto(f"{base}/admin/training/trainingrun/{run_id}/change/")
    detail = page.locator(".field-status").first.inner_text()
    assert "no worker consumes queue training" in detail, detail


def image_urls(image: dict) -> list[str]:
    return [image["url"], image["file_url"], image["thumbnail_url"]]


def test_operator_generates_a_set_flags_nsfw_and_the_public_api_hides_it(
    chromium_path, screenshots, media_root, runtime_config_file, django_user_model
):
    runtime_config_file.write_text("generation:\n  set_run_batch_size: 3\n")
    tiny_model = generation_registry.ensure_tiny_model("tiny-sd")
    password = secrets.token_urlsafe(16)
    operator = django_user_model.objects.create_superuser("operator", "operator@example.invalid")
    # The server runs the real settings, which do not know the tests' fast MD5 hasher.
    hasher = PBKDF2PasswordHasher()
    operator.password = hasher.encode(password, hasher.salt())
    operator.save(update_fields=["password"])
    problems = PageProblems()
    training_run = make_job_row("TrainingRun")  # queued; the worker below does not consume `training`

    with (
        web_server(media_root=media_root) as server,
        celery_worker(queues="generation,default,labeling,maintenance", media_root=media_root) as worker,
        launched_chromium(chromium_path) as browser,
    ):
        server.wait_ready()
        base = server.url
        admin_context = browser.new_context(viewport={"width": 1280, "height": 900})
        admin_context.set_default_timeout(20_000)
        problems.watch(admin_context)
        page = admin_context.new_page()
        with screenshot_on_failure(page, screenshots):
            sign_in(page, base, "operator", password)
            screenshots.take(page, "admin-index")

            create_set_template(page, base, tiny_model.pk)
            previews = page.locator(".field-prompt_preview li").all_inner_texts()
            assert previews == [f"Art style: {THEME}. a glowing {thing}" for thing in ROWS]
            screenshots.take(page, "set-template")

            run_id = run_set(page, screenshots)
            assert page.url == f"{base}/admin/generation/setrun/{run_id}/change/"
            assert page.locator("label", has_text="Output album").count() == 1
            status = wait_until_succeeded(page, worker)
            screenshots.take(page, "set-run-finished")
            assert status == "Succeeded", page.locator(".field-error_message").inner_text()
            done = [
                page.locator(f".field-{name} .readonly").inner_text() for name in ("completed_items", "failed_items")
            ]
            assert done == [str(len(ROWS)), "0"]

            admin_list = fetch_json(page, f"{base}/api/images/")
            assert admin_list["status"] == 200
            generated = sorted(admin_list["body"]["results"], key=lambda image: image["id"])
            assert len(generated) == len(ROWS) and not any(image["is_nsfw"] for image in generated)
            flagged, kept = generated
            mark_nsfw_from_changelist(page, base, flagged["id"])
            assert (nsfw_column(page, flagged["id"]), nsfw_column(page, kept["id"])) == ("True", "False")
            screenshots.take(page, "image-changelist-nsfw")
            assert fetch_json(page, flagged["url"])["body"]["is_nsfw"] is True  # stored, not only shown
            # New public images wait for their NSFW check (the worker's `labeling` queue) before anyone sees them.
            deadline = time.monotonic() + 120
            while any(fetch_json(page, image["url"])["body"]["nsfw_check"] != "passed" for image in generated):
                assert time.monotonic() < deadline, worker.text[-3000:]
                time.sleep(0.5)

            open_disk_usage(page, base, worker, forbidden=[str(settings.DATA_DIR), str(media_root)])
            screenshots.take(page, "disk-usage")
            open_runtime_config(page, base)
            screenshots.take(page, "runtime-config")
            open_celery_workers_and_a_job_no_worker_takes(page, base, training_run.pk)
            screenshots.take(page, "training-run-no-worker")  # its page: the status says why it waits
            page.goto(f"{base}/admin/core/celeryworker/")
            screenshots.take(page, "celery-workers")
            session_key = next(c["value"] for c in admin_context.cookies() if c["name"] == "sessionid")

        # A new context: no cookies, so the API answers as it does anyone on the internet.
        public_context = browser.new_context(viewport={"width": 1280, "height": 900})
        public_context.set_default_timeout(20_000)
        problems.watch(public_context, console=False)  # Chromium logs each expected 404 as an error
        public = public_context.new_page()
        with screenshot_on_failure(public, screenshots):
            public.goto(f"{base}/api/images/")
            assert "sessionid" not in {cookie["name"] for cookie in public_context.cookies()}
            screenshots.take(public, "public-api-images")
            listed = fetch_json(public, f"{base}/api/images/")
            assert listed["status"] == 200
            assert [image["id"] for image in listed["body"]["results"]] == [kept["id"]]
            assert fetch_statuses(public, image_urls(flagged)) == dict.fromkeys(image_urls(flagged), 404)
            assert fetch_statuses(public, image_urls(kept)) == dict.fromkeys(image_urls(kept), 200)

    assert problems.as_dict() == {}, problems.as_dict()
    # What the server and the worker wrote (the in-process credential scan cannot see them).
    private = {
        password: "the password",
        session_key: "the session key",
        operator.email: "an e-mail",
        "glowing": "a prompt",
    }
    output = server.output.text + worker.text
    assert [what for text, what in private.items() if text in output] == []
