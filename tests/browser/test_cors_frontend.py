"""A separate web frontend on another origin uses the API, in a real browser against a real web server.

Three servers on 127.0.0.1: the Django web server with IMAGINEER_CORS_ALLOWED_ORIGINS naming one
frontend origin, and two static servers (the allowed origin and another one) serving the same page.
The page's script does what docs/FRONTEND.md tells a frontend to do: take a CSRF token from
/api/auth/csrf, sign in through allauth's headless API, read /api/auth/me, read an API error's
envelope, sign out. On the allowed origin every step works; on the other origin the browser refuses
to let the page read any answer, and the sign-in that page attempts never reaches the server (the
preflight is refused). Both origins are the same *site* (127.0.0.1), as a frontend at
app.example.com and the API at api.example.com are: the session cookie (SameSite=Lax) travels
with both pages' requests, which is why the refusal must come from CORS, and does.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.browser.chromium import ARTIFACTS, PageProblems, launched_chromium
from tests.browser.web_server import web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The page both static servers serve. ?api=<the API's origin>. Each step writes its outcome into the
# page (for the screenshots) and into window.results (for the test); a step the browser refuses
# (no Access-Control-Allow-Origin for this origin) rejects with a TypeError and reads "refused".
FRONTEND_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>A separate frontend</title>
  <link rel="icon" href="data:,">
  <style>
    body { font-family: sans-serif; margin: 2em; max-width: 60em; }
    dt { font-weight: bold; margin-top: 1em; }
    dd { font-family: monospace; white-space: pre-wrap; word-break: break-all; margin-left: 1em; }
    .refused { color: #a00; }
    .ok { color: #070; }
  </style>
</head>
<body>
  <h1>Frontend on <span id="origin"></span></h1>
  <p>API at <span id="api"></span></p>
  <form id="sign-in-form">
    <input id="username" placeholder="username" autocomplete="username">
    <input id="password" type="password" placeholder="password" autocomplete="current-password">
    <button type="submit" id="sign-in">Sign in</button>
    <button type="button" id="sign-out">Sign out</button>
  </form>
  <dl>
    <dt>CSRF token (GET /api/auth/csrf)</dt><dd id="csrf">-</dd>
    <dt>Sign-in (POST /_allauth/browser/v1/auth/login)</dt><dd id="login">-</dd>
    <dt>Who am I (GET /api/auth/me)</dt><dd id="me">-</dd>
    <dt>An API error (POST /api/generation/jobs/ without a prompt)</dt><dd id="error">-</dd>
    <dt>Sign-out (DELETE /_allauth/browser/v1/auth/session)</dt><dd id="logout">-</dd>
  </dl>
  <p id="state" data-runs="0"></p>
<script>
const api = new URLSearchParams(location.search).get("api");
document.getElementById("origin").textContent = location.origin;
document.getElementById("api").textContent = api;
window.results = {};

// Every call carries the cookies (credentials: "include"); unsafe ones carry the CSRF token.
async function call(path, {method = "GET", body, csrfToken} = {}) {
  const headers = {Accept: "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrfToken) headers["X-CSRFToken"] = csrfToken;
  const response = await fetch(api + path, {
    method, headers, credentials: "include", body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {status: response.status, requestId: response.headers.get("X-Request-ID"), body: await response.json()};
}

async function freshCsrfToken() {
  return (await call("/api/auth/csrf")).body.csrf_token;
}

async function step(name, work) {
  const shown = document.getElementById(name);
  try {
    const result = await work();
    window.results[name] = {ok: result};
    shown.className = "ok";
    shown.textContent = typeof result === "string" ? result : JSON.stringify(result, null, 1);
  } catch (error) {
    window.results[name] = {refused: `${error.name}: ${error.message}`};
    shown.className = "refused";
    shown.textContent = `refused: ${error.name}: ${error.message}`;
  }
}

async function signIn(username, password) {
  let token = null;
  await step("csrf", async () => { token = await freshCsrfToken(); return `a token of ${token.length} characters`; });
  await step("login", async () => {
    const answer = await call("/_allauth/browser/v1/auth/login",
                              {method: "POST", body: {username, password}, csrfToken: token});
    return {status: answer.status, is_authenticated: answer.body.meta.is_authenticated,
            username: answer.body.data.user.username};
  });
  await step("me", async () => {
    const answer = await call("/api/auth/me");
    return {status: answer.status, ...answer.body};
  });
  await step("error", async () => {
    // Signing in rotated the CSRF token: take the new one.
    const answer = await call("/api/generation/jobs/", {method: "POST", body: {}, csrfToken: await freshCsrfToken()});
    return {status: answer.status, request_id_header: answer.requestId, ...answer.body.error};
  });
}

async function signOut() {
  await step("logout", async () => {
    const answer = await call("/_allauth/browser/v1/auth/session", {method: "DELETE", csrfToken: await freshCsrfToken()});
    return {status: answer.status, is_authenticated: answer.body.meta.is_authenticated};
  });
  await step("me", async () => {
    const answer = await call("/api/auth/me");
    return {status: answer.status, ...answer.body};
  });
}

// What a hostile page on the same site can do: cookies do not tell ports (or subdomains) apart, so
// it can read the csrftoken cookie; it still needs the API to let its origin send a JSON POST.
window.signInWithTheCookiesToken = async (username, password) => {
  const token = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || null;
  window.results.cookie_token_found = Boolean(token);
  await step("login", async () => {
    const answer = await call("/_allauth/browser/v1/auth/login",
                              {method: "POST", body: {username, password}, csrfToken: token});
    return {status: answer.status, is_authenticated: answer.body.meta.is_authenticated};
  });
};

async function run(action) {
  const state = document.getElementById("state");
  try { await action(); } finally { state.dataset.runs = String(Number(state.dataset.runs) + 1); }
}

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(() => signIn(document.getElementById("username").value, document.getElementById("password").value));
});
document.getElementById("sign-out").addEventListener("click", () => run(signOut));
</script>
</body>
</html>
"""


@dataclass
class StaticSite:
    origin: str
    requests: list[str]


@contextmanager
def static_site(page: str) -> Iterator[StaticSite]:
    """One HTML page at / on 127.0.0.1:<free port>: a frontend that has nothing but its origin."""
    body = page.encode()
    site = StaticSite(origin="", requests=[])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            site.requests.append(self.path)
            if self.path.split("?")[0] != "/":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


class PageShots:
    """Screenshots under the test's tmp path, copied to artifacts/browser/cors-frontend/.

    A folder of its own: the admin console test clears artifacts/browser/ when it starts, and the
    two may run at the same time under xdist (so the folder is made again before each copy).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.artifacts = ARTIFACTS / "cors-frontend"
        shutil.rmtree(self.artifacts, ignore_errors=True)
        self.count = 0

    def take(self, page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, self.artifacts / path.name)
        return path


@contextmanager
def screenshot_on_failure(page, shots: PageShots):
    try:
        yield
    except BaseException:
        shots.take(page, "failure")
        raise


def with_password(user, password: str):
    # The server runs the real settings, which do not know the tests' fast MD5 hasher.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(password, hasher.salt())
    user.save(update_fields=["password"])
    return user


def watch_without_interception(problems: PageProblems, context) -> None:
    """What PageProblems.watch records, without its route: while any route is set, Playwright answers
    every CORS preflight itself with "allowed", which would hide the very refusal this test is about.
    Requests off 127.0.0.0/8 are recorded (not aborted); console errors are not recorded, since
    Chromium logs every refused request and every 4xx as one, and this test provokes both.
    """

    def record(request) -> None:
        host = urlsplit(request.url).hostname or ""
        if not (request.url.startswith(("data:", "blob:", "about:")) or host.startswith("127.")):
            problems.offsite_requests.append(request.url)

    def watch_page(page) -> None:
        page.on("pageerror", lambda error: problems.page_errors.append(f"{page.url}: {error}"))
        page.on(
            "response",
            lambda response: (
                response.status >= 500 and problems.server_errors.append(f"{response.status} {response.url}")
            ),
        )

    context.on("request", record)
    context.on("page", watch_page)


def cors_headers(url: str, origin: str) -> dict[str, str]:
    """The Access-Control-* headers the server answers a GET from `origin` with (no cookies)."""
    request = urllib.request.Request(url, headers={"Origin": origin, "Accept": "application/json"})
    try:
        response = urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:  # a 401 is an answer too
        response = error
    with response:
        return {name.lower(): value for name, value in response.headers.items() if name.lower().startswith("access-")}


def open_frontend(context, site: StaticSite, api: str):
    page = context.new_page()
    page.goto(f"{site.origin}/?api={api}")
    assert page.locator("#origin").inner_text() == site.origin
    return page


def submit(page, action) -> dict:
    """Do `action` (a click) and wait until the page's script has finished the run it started."""
    runs = int(page.locator("#state").get_attribute("data-runs"))
    action()
    page.wait_for_function(f"Number(document.getElementById('state').dataset.runs) > {runs}")
    return page.evaluate("window.results")


def sign_in(page, username: str, password: str) -> dict:
    page.fill("#username", username)
    page.fill("#password", password)
    return submit(page, lambda: page.click("#sign-in"))


REFUSED = re.compile(r"^TypeError: Failed to fetch")


def test_allowed_origin_signs_in_and_reads_the_api_and_another_origin_is_refused(
    chromium_path, tmp_path, media_root, django_user_model
):
    alice_password, bob_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    alice = with_password(django_user_model.objects.create_user("alice", "alice@example.invalid"), alice_password)
    bob = with_password(django_user_model.objects.create_user("bob", "bob@example.invalid"), bob_password)
    problems = PageProblems()
    shots = PageShots(tmp_path / "screenshots")
    console: dict[str, list[str]] = {"allowed": [], "other": []}

    with (
        static_site(FRONTEND_PAGE) as allowed,
        static_site(FRONTEND_PAGE) as other,
        web_server(media_root=media_root, extra_env={"IMAGINEER_CORS_ALLOWED_ORIGINS": allowed.origin}) as server,
        launched_chromium(chromium_path) as browser,
    ):
        server.wait_ready()
        api = server.url
        # What the server answers each origin, before any browser is involved.
        assert cors_headers(f"{api}/api/auth/me", allowed.origin) == {
            "access-control-allow-origin": allowed.origin,
            "access-control-allow-credentials": "true",
            "access-control-expose-headers": "Retry-After, Location, X-Request-ID",
        }
        assert cors_headers(f"{api}/api/auth/me", other.origin) == {}
        assert cors_headers(f"{api}/api/auth/csrf", other.origin) == {}

        # One context for both pages: one browser, one cookie jar, as a person with two tabs has.
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.set_default_timeout(20_000)
        watch_without_interception(problems, context)
        page = open_frontend(context, allowed, api)
        page.on("console", lambda message: console["allowed"].append(message.text))
        with screenshot_on_failure(page, shots):
            results = sign_in(page, "alice", alice_password)
            shots.take(page, "allowed-origin-signed-in")
            assert set(results) == {"csrf", "login", "me", "error"}
            assert all("ok" in outcome for outcome in results.values()), results
            assert results["login"]["ok"] == {"status": 200, "is_authenticated": True, "username": "alice"}
            me = results["me"]["ok"]
            assert (me["status"], me["id"], me["username"], me["is_admin"]) == (200, alice.pk, "alice", False)
            shown = page.locator("#me").inner_text()
            assert f'"id": {alice.pk}' in shown and '"username": "alice"' in shown
            # The envelope of a 400 is readable, and so is the X-Request-ID header it names.
            error = results["error"]["ok"]
            assert (error["status"], error["code"]) == (400, "validation_error"), error
            assert error["details"] == {"fields": {"prompt": ["This field is required."]}}
            assert error["request_id_header"] == error["trace_id"]
            assert "validation_error" in page.locator("#error").inner_text()
            # Same site, so the Lax session cookie goes with the other origin's requests as well.
            session = next(cookie for cookie in context.cookies() if cookie["name"] == "sessionid")
            assert (session["domain"], session["sameSite"], session["httpOnly"]) == ("127.0.0.1", "Lax", True)

        # The same page on an origin the API does not name. The browser sends alice's session
        # cookie along (same site), the server answers, and the page may read none of it.
        refused = open_frontend(context, other, api)
        refused.on("console", lambda message: console["other"].append(message.text))
        with screenshot_on_failure(refused, shots):
            results = sign_in(refused, "alice", alice_password)
            shots.take(refused, "other-origin-refused")
            assert set(results) == {"csrf", "login", "me", "error"}
            assert all(REFUSED.match(outcome.get("refused", "")) for outcome in results.values()), results
            assert refused.locator("#me").inner_text().startswith("refused: TypeError")
            blocked = [text for text in console["other"] if "blocked by CORS policy" in text]
            assert any(
                "/api/auth/me" in text and "No 'Access-Control-Allow-Origin' header is present" in text
                for text in blocked
            ), console["other"]
            # The JSON sign-in needs a preflight, which the server does not allow for this origin.
            assert any(
                "/_allauth/browser/v1/auth/login" in text and "Response to preflight request doesn't pass" in text
                for text in blocked
            ), "\n".join(blocked)

        # Back on the allowed origin: sign out, and the 401 envelope is readable too.
        with screenshot_on_failure(page, shots):
            results = submit(page, lambda: page.click("#sign-out"))
            shots.take(page, "allowed-origin-signed-out")
            assert results["logout"]["ok"] == {"status": 401, "is_authenticated": False}  # allauth: 401 = signed out
            me = results["me"]["ok"]
            assert (me["status"], me["error"]["code"]) == (401, "not_authenticated"), me

        # Signed out now, the other origin's page takes the CSRF token from the cookie it shares with
        # every page on 127.0.0.1 and tries to sign bob in: the preflight is refused, nothing is sent.
        with screenshot_on_failure(refused, shots):
            refused.fill("#username", "bob")
            refused.fill("#password", bob_password)
            refused.evaluate(
                "([username, password]) => window.signInWithTheCookiesToken(username, password)", ["bob", bob_password]
            )
            results = refused.evaluate("window.results")
            shots.take(refused, "other-origin-sign-in-refused")
            assert results["cookie_token_found"] is True
            assert REFUSED.match(results["login"].get("refused", "")), results["login"]

    assert problems.as_dict() == {}, problems.as_dict()
    assert [text for text in console["allowed"] if "CORS" in text] == []
    assert allowed.requests == ["/?api=" + api] and other.requests == ["/?api=" + api]
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.last_login is not None
    assert bob.last_login is None
    output = server.output.text
    # The other origin's read of /api/auth/me did reach the server with alice's cookie and was
    # answered with her data: the browser, told by the missing CORS headers, kept it from the page.
    answered_alice = rf"method=GET path=/api/auth/me request_id=\w+ status=200 user_id={alice.pk}\b"
    assert len(re.findall(answered_alice, output)) == 2, output[-3000:]
    # The other origin's sign-ins stopped at their preflight: the server saw alice's POST only.
    assert output.count("method=POST path=/_allauth/browser/v1/auth/login ") == 1, output[-3000:]
    assert output.count("method=OPTIONS path=/_allauth/browser/v1/auth/login ") == 3, output[-3000:]
    private = {
        alice_password: "alice's password",
        bob_password: "bob's password",
        session["value"]: "the session key",
        alice.email: "an e-mail",
    }
    assert [what for text, what in private.items() if text in output] == []
    assert "Internal Server Error" not in output, output[-3000:]
