"""Who may sign up (IMAGINEER_SIGNUP), invitations, and deactivating a user.

First Google sign-ins go through allauth's real views against a fake Google on 127.0.0.1
(tests/core/fake_google.py); invitations and deactivation are made through the admin as an operator
does, over the test client.
"""

import datetime
import smtplib
import threading
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from imagineer.core import signup
from imagineer.core.auth import deactivate_user
from imagineer.core.checks import check_signup_settings
from imagineer.core.models import Invitation
from tests.assertions import assert_envelope
from tests.core.fake_google import GoogleSignIns, sign_in_with_google
from tests.factories import AdminFactory, UserFactory
from tests.log_capture import LogCapture

pytestmark = pytest.mark.django_db
User = get_user_model()
CLOSED_TEXT = "Sign-up is closed on this site"


@pytest.fixture
def google(monkeypatch, settings):
    settings.IMAGINEER_ADMIN_EMAILS = ["boss@example.com"]
    settings.IMAGINEER_SIGNUP = "closed"
    settings.IMAGINEER_SIGNUP_EMAILS = []
    settings.IMAGINEER_SIGNUP_DOMAINS = []
    settings.IMAGINEER_SIGNUP_CONTACT = ""
    with GoogleSignIns(monkeypatch) as sign_ins:
        yield sign_ins.start


def first_sign_in(google, email: str, verified: bool = True, uid: str | None = None) -> tuple[Client, object]:
    google(email, verified, uid)
    client = Client()
    _, callback = sign_in_with_google(client)
    return client, callback


def assert_signed_up(client: Client, callback, email: str):
    assert callback.status_code == 302, callback.content.decode()[:800]
    user = User.objects.get(email__iexact=email)
    assert client.session[SESSION_KEY] == str(user.pk)
    return user


def assert_refused(client: Client, callback):
    """The closed page, nobody signed in, and no row of any account written."""
    assert callback.status_code == 200
    assert CLOSED_TEXT in callback.content.decode()
    assert SESSION_KEY not in client.session
    assert not User.objects.exists()
    assert not EmailAddress.objects.exists()
    assert not SocialAccount.objects.exists()


def invite(email: str, days: int = 14, **fields) -> Invitation:
    return Invitation.objects.create(email=email, expires_at=timezone.now() + datetime.timedelta(days=days), **fields)


# --- closed (the default) ------------------------------------------------------------------------


def test_closed_refuses_an_unknown_address_with_a_page_naming_whom_to_ask(google):
    with LogCapture() as logs:
        client, callback = first_sign_in(google, "stranger@example.com")
    assert_refused(client, callback)
    assert "ask an administrator of this site" in callback.content.decode()
    refused = [line for line in logs.json_lines() if line["event"] == "auth.signup_refused"]
    assert refused and refused[0]["reason"] == "not_invited" and refused[0]["mode"] == "closed"
    assert "stranger" not in logs.text() and "[email]" not in logs.text()  # no address, not even redacted


def test_closed_page_names_the_configured_contact(google, settings):
    settings.IMAGINEER_SIGNUP_CONTACT = "the lab manager, Ada"
    client, callback = first_sign_in(google, "stranger@example.com")
    assert_refused(client, callback)
    assert "ask the lab manager, Ada for an invitation" in callback.content.decode()


def test_local_sign_up_form_is_never_offered():
    response = Client().get("/accounts/signup/")
    assert CLOSED_TEXT in response.content.decode()
    assert not User.objects.exists()


def test_closed_admits_an_admin_address(google):
    client, callback = first_sign_in(google, "Boss@Example.com")
    user = assert_signed_up(client, callback, "boss@example.com")
    assert user.is_staff and user.is_superuser


def test_invitation_admits_once_and_is_marked_used(google):
    invitation = invite("Guest@Example.com")
    with LogCapture() as logs:
        client, callback = first_sign_in(google, "guest@example.com")
    user = assert_signed_up(client, callback, "guest@example.com")
    assert not user.is_staff
    invitation.refresh_from_db()
    assert invitation.used_by == user and invitation.used_at is not None
    assert signup.invitation_status(invitation) == signup.InvitationStatus.USED
    used = [line for line in logs.json_lines() if line["event"] == "auth.invitation_used"]
    assert [(line["invitation_id"], line["user_id"]) for line in used] == [(invitation.pk, user.pk)]
    assert "guest@" not in logs.text().lower() and "[email]" not in logs.text()

    # Another Google account with the same address finds the invitation used.
    second, refused = first_sign_in(google, "guest@example.com", uid="another-google-account")
    assert CLOSED_TEXT in refused.content.decode() and SESSION_KEY not in second.session
    assert User.objects.count() == 1 and SocialAccount.objects.count() == 1


def test_an_invitation_taken_meanwhile_makes_no_second_account(google):
    """Two sign-ins both pass the check, then write: the second finds the invitation used and
    leaves no rows (the race allauth's check-then-save would otherwise lose)."""
    invitation = invite("guest@example.com")
    offered = [EmailAddress(email="guest@example.com", verified=True)]
    assert signup.may_sign_up(offered) and signup.may_sign_up(offered)

    first = signup.create_account(lambda: UserFactory(email="guest@example.com"), offered)
    with pytest.raises(signup.SignupRefused):
        signup.create_account(lambda: UserFactory(email="guest@example.com"), offered)

    assert list(User.objects.all()) == [first]
    invitation.refresh_from_db()
    assert invitation.used_by == first


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL (SQLite has one writer)"
)
@pytest.mark.django_db(transaction=True)
def test_two_sign_ins_racing_for_one_invitation_make_one_account():
    """The second sign-in's write waits on the first's lock on the invitation, then finds it used."""
    invitation = invite("guest@example.com")
    offered = [EmailAddress(email="guest@example.com", verified=True)]
    first_marked, second_waits = threading.Event(), threading.Event()
    outcome = {}

    def first():
        with transaction.atomic():  # the first sign-in's transaction stays open until the second waits
            outcome["first"] = signup.create_account(lambda: UserFactory(username="first"), offered)
            first_marked.set()
            assert second_waits.wait(timeout=30)

    def second():
        assert first_marked.wait(timeout=30)
        try:
            outcome["second"] = signup.create_account(lambda: UserFactory(username="second"), offered)
        except signup.SignupRefused:
            outcome["second"] = "refused"

    threads = [_in_thread(first), _in_thread(second)]
    assert first_marked.wait(timeout=30)
    for _ in range(600):  # until the second sign-in waits on a row lock (at most ~30 s)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
        time.sleep(0.05)
    else:
        pytest.fail("the second sign-in never waited on the invitation's row")
    second_waits.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive() and not thread.errors, thread.errors

    assert outcome["second"] == "refused"
    assert list(User.objects.values_list("username", flat=True)) == ["first"]
    invitation.refresh_from_db()
    assert invitation.used_by == outcome["first"]


def _in_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        except BaseException as exc:  # surfaced by the test through errors
            thread.errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = []
    thread.start()
    return thread


def test_expired_invitation_is_refused(google):
    invite("guest@example.com", days=-1)
    assert_refused(*first_sign_in(google, "guest@example.com"))


def test_unverified_address_never_counts(google, settings):
    settings.IMAGINEER_SIGNUP = "allowlist"
    settings.IMAGINEER_SIGNUP_EMAILS = ["listed@example.com"]
    invite("guest@example.com")
    with LogCapture() as logs:
        for email in ("guest@example.com", "boss@example.com", "listed@example.com"):
            assert_refused(*first_sign_in(google, email, verified=False))
    reasons = [line["reason"] for line in logs.json_lines() if line["event"] == "auth.signup_refused"]
    assert reasons and set(reasons) == {"unverified_email"}
    assert Invitation.objects.get().used_at is None


def test_existing_user_signs_in_while_closed(google, settings):
    settings.IMAGINEER_SIGNUP = "open"
    first_sign_in(google, "member@example.com")
    settings.IMAGINEER_SIGNUP = "closed"
    client, callback = first_sign_in(google, "member@example.com")
    assert callback.status_code == 302
    assert client.session[SESSION_KEY] == str(User.objects.get().pk)


def test_a_new_account_uses_its_pending_invitation_whatever_admitted_it(google):
    invitation = invite("boss@example.com")
    user = assert_signed_up(*first_sign_in(google, "boss@example.com"), "boss@example.com")
    invitation.refresh_from_db()
    assert invitation.used_by == user


# --- allowlist and open --------------------------------------------------------------------------


def test_allowlist_admits_a_listed_address(google, settings):
    settings.IMAGINEER_SIGNUP = "allowlist"
    settings.IMAGINEER_SIGNUP_EMAILS = ["friend@elsewhere.org"]
    assert_signed_up(*first_sign_in(google, "Friend@Elsewhere.org"), "friend@elsewhere.org")


def test_allowlist_admits_a_listed_domain(google, settings):
    settings.IMAGINEER_SIGNUP = "allowlist"
    settings.IMAGINEER_SIGNUP_DOMAINS = ["lab.example"]
    assert_signed_up(*first_sign_in(google, "someone@lab.example"), "someone@lab.example")


def test_allowlist_domain_does_not_admit_its_subdomains_or_look_alikes(google, settings):
    settings.IMAGINEER_SIGNUP = "allowlist"
    settings.IMAGINEER_SIGNUP_DOMAINS = ["lab.example"]
    for email in ("someone@dept.lab.example", "someone@otherlab.example"):
        assert_refused(*first_sign_in(google, email))


def test_allowlist_refuses_an_unlisted_address_and_still_takes_invitations(google, settings):
    settings.IMAGINEER_SIGNUP = "allowlist"
    settings.IMAGINEER_SIGNUP_EMAILS = ["friend@elsewhere.org"]
    client, callback = first_sign_in(google, "stranger@example.com")
    assert_refused(client, callback)
    assert "addresses and domains the site lists" in callback.content.decode()
    invite("guest@example.com")
    assert_signed_up(*first_sign_in(google, "guest@example.com"), "guest@example.com")


def test_open_admits_anybody(google, settings):
    settings.IMAGINEER_SIGNUP = "open"
    user = assert_signed_up(*first_sign_in(google, "anybody@example.net"), "anybody@example.net")
    assert not user.is_staff


def test_unknown_mode_admits_nobody_but_existing_users(google, settings):
    settings.IMAGINEER_SIGNUP = "sometimes"  # the system check stops a site started like this
    assert_refused(*first_sign_in(google, "boss@example.com"))


# --- the Invitation admin ------------------------------------------------------------------------


# The invitation e-mail goes out when the admin's transaction commits, and the page says how that
# went: these tests commit for real (transaction=True) so that the message reaches the page.


@pytest.mark.django_db(transaction=True)
def test_admin_invites_by_email(admin_browser, admin_user, settings):
    settings.IMAGINEER_INVITE_DAYS = 14
    form = admin_browser.get("/admin/core/invitation/add/").content.decode()
    assert 'name="days_valid"' in form and 'value="14"' in form

    before = timezone.now()
    response = admin_browser.post(
        "/admin/core/invitation/add/",
        {"email": "New.Person@Example.com", "days_valid": "7", "note": "joins the April project"},
        follow=True,
    )
    assert response.status_code == 200
    invitation = Invitation.objects.get()
    assert invitation.email == "new.person@example.com"
    assert invitation.invited_by == admin_user and invitation.note == "joins the April project"
    assert before + datetime.timedelta(days=7) <= invitation.expires_at <= timezone.now() + datetime.timedelta(days=7)
    assert "Sent the invitation e-mail to new.person@example.com" in response.content.decode()

    [message] = mail.outbox
    assert message.to == ["new.person@example.com"]
    assert message.subject == "You are invited to Imagineer"
    assert "http://testserver/accounts/login/" in message.body
    assert "new.person@example.com" in message.body and admin_user.username in message.body
    assert "April project" not in message.body  # the note is for the other admins


def test_admin_invite_form_refuses_bad_input_and_writes_nothing(admin_browser, django_capture_on_commit_callbacks):
    UserFactory(email="member@example.com")
    invite("pending@example.com")
    cases = [
        ({"email": "Member@example.com", "days_valid": "7"}, "A user with this address exists already"),
        ({"email": "pending@example.com", "days_valid": "7"}, "is still pending"),
        ({"email": "not-an-address", "days_valid": "7"}, "Enter a valid email address"),
        ({"email": "x@example.com", "days_valid": "0"}, "greater than or equal to 1"),
        ({"email": "x@example.com", "days_valid": "400"}, "less than or equal to 365"),
    ]
    for data, error in cases:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_browser.post("/admin/core/invitation/add/", data)
        assert response.status_code == 200, data
        assert error in response.content.decode(), data
    assert Invitation.objects.count() == 1 and not mail.outbox


@pytest.mark.django_db(transaction=True)
def test_invitation_mail_that_cannot_be_sent_is_reported(admin_browser, monkeypatch):
    def refuse(*args, **kwargs):
        raise smtplib.SMTPConnectError(421, "try later")

    monkeypatch.setattr(signup, "send_mail", refuse)
    response = admin_browser.post(
        "/admin/core/invitation/add/", {"email": "guest@example.com", "days_valid": "3"}, follow=True
    )
    page = response.content.decode()
    assert "could not be sent (SMTPConnectError)" in page and "Send again" in page
    assert Invitation.objects.get().email == "guest@example.com"  # still valid: the link can be passed on


def test_invitation_list_shows_and_filters_status(admin_browser, admin_user):
    pending = invite("pending@example.com")
    expired = invite("expired@example.com", days=-1)
    used = invite("used@example.com", used_at=timezone.now(), used_by=admin_user)

    def listed(query: str = "") -> set[int]:
        response = admin_browser.get(f"/admin/core/invitation/{query}")
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    page = admin_browser.get("/admin/core/invitation/").content.decode()
    assert all(label in page for label in ("Pending", "Used", "Expired"))
    assert listed() == {pending.pk, expired.pk, used.pk}
    assert listed("?status=pending") == {pending.pk}
    assert listed("?status=expired") == {expired.pk}
    assert listed("?status=used") == {used.pk}


def test_invitation_page_keeps_address_and_expiry_fixed(admin_browser):
    invitation = invite("guest@example.com")
    page = admin_browser.get(f"/admin/core/invitation/{invitation.pk}/change/").content.decode()
    assert 'name="note"' in page and 'name="email"' not in page and 'name="expires_at"' not in page
    assert "Pending" in page
    response = admin_browser.post(f"/admin/core/invitation/{invitation.pk}/change/", {"note": "met at the workshop"})
    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.note == "met at the workshop" and invitation.email == "guest@example.com"


def test_send_again_renews_and_mails_unused_invitations(
    admin_browser, admin_user, settings, django_capture_on_commit_callbacks
):
    settings.IMAGINEER_INVITE_DAYS = 10
    expired = invite("expired@example.com", days=-1)
    used = invite("used@example.com", used_at=timezone.now(), used_by=admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_browser.post(
            "/admin/core/invitation/",
            {"action": "send_again", "_selected_action": [expired.pk, used.pk]},
            follow=True,
        )
    assert "1 invitation(s) were used already and were not sent" in response.content.decode()
    expired.refresh_from_db()
    assert signup.invitation_status(expired) == signup.InvitationStatus.PENDING
    assert expired.expires_at > timezone.now() + datetime.timedelta(days=9)
    assert [m.to for m in mail.outbox] == [["expired@example.com"]]


def test_revoked_invitation_admits_nobody(google, admin_browser):
    invitation = invite("guest@example.com")
    response = admin_browser.post(
        "/admin/core/invitation/", {"action": "revoke", "_selected_action": [invitation.pk]}, follow=True
    )
    assert "Revoked 1 invitation(s)" in response.content.decode()
    invitation.refresh_from_db()
    assert signup.invitation_status(invitation) == signup.InvitationStatus.EXPIRED
    user_count = User.objects.count()  # the admin
    client, callback = first_sign_in(google, "guest@example.com")
    assert CLOSED_TEXT in callback.content.decode() and SESSION_KEY not in client.session
    assert User.objects.count() == user_count


# --- deactivation ----------------------------------------------------------------------------------


def deactivate_in_admin(admin_browser: Client, *users) -> str:
    response = admin_browser.post(
        "/admin/core/user/",
        {"action": "deactivate_users", "_selected_action": [user.pk for user in users]},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_deactivated_users_token_stops_working_at_once(admin_browser):
    member = AdminFactory()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")
    assert api.post("/api/albums/", {"name": "before"}).status_code == 201

    assert "Deactivated 1 user(s)" in deactivate_in_admin(admin_browser, member)

    assert_envelope(api.post("/api/albums/", {"name": "after"}), 401, "authentication_failed")
    member.refresh_from_db()
    assert not member.is_active and not Token.objects.filter(user=member).exists()


def test_deactivated_users_session_stops_working_at_once(admin_browser):
    member = AdminFactory()
    browser = Client()
    browser.force_login(member)
    assert browser.get("/admin/").status_code == 200
    assert browser.post("/api/albums/", {"name": "before"}, content_type="application/json").status_code == 201

    deactivate_in_admin(admin_browser, member)

    admin_page = browser.get("/admin/")
    assert admin_page.status_code == 302 and admin_page["Location"].startswith("/admin/login/")
    refused = browser.post("/api/albums/", {"name": "after"}, content_type="application/json")
    assert_envelope(refused, 401, "not_authenticated")
    assert not [s for s in Session.objects.all() if s.get_decoded().get(SESSION_KEY) == str(member.pk)]


def test_inactive_flag_alone_refuses_token_and_session():
    """What refuses them is is_active, checked on every request, not only the deleted credentials."""
    member = AdminFactory()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")
    browser = Client()
    browser.force_login(member)
    User.objects.filter(pk=member.pk).update(is_active=False)

    assert_envelope(api.post("/api/albums/", {"name": "x"}), 401, "authentication_failed")
    assert browser.get("/admin/").status_code == 302
    assert_envelope(browser.post("/api/albums/", {"name": "x"}, content_type="application/json"), 401)


def test_deactivated_user_cannot_sign_in_with_google(google, settings):
    settings.IMAGINEER_SIGNUP = "open"
    first_sign_in(google, "member@example.com")
    deactivate_user(User.objects.get())
    client, callback = first_sign_in(google, "member@example.com")
    assert callback.status_code == 302 and callback["Location"] == "/accounts/inactive/"
    assert SESSION_KEY not in client.session


def test_admin_cannot_deactivate_themselves(admin_browser, admin_user):
    other = UserFactory()
    page = deactivate_in_admin(admin_browser, admin_user, other)
    assert "You cannot deactivate yourself; nobody was deactivated" in page
    admin_user.refresh_from_db()
    other.refresh_from_db()
    assert admin_user.is_active and other.is_active


def test_reactivated_user_signs_in_again_without_their_old_token(admin_browser):
    member = UserFactory()
    old_key = Token.objects.create(user=member).key
    deactivate_in_admin(admin_browser, member)
    response = admin_browser.post(
        "/admin/core/user/", {"action": "reactivate_users", "_selected_action": [member.pk]}, follow=True
    )
    assert "Reactivated 1 user(s)" in response.content.decode()
    member.refresh_from_db()
    assert member.is_active
    assert Client().login(username=member.username, password="pw")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {old_key}")
    assert_envelope(api.post("/api/albums/", {"name": "x"}), 401, "authentication_failed")


def test_user_list_shows_and_filters_active(admin_browser, admin_user):
    inactive = UserFactory(is_active=False)
    page = admin_browser.get("/admin/core/user/").content.decode()
    assert "column-is_active" in page and "is_active__exact=0" in page
    response = admin_browser.get("/admin/core/user/?is_active__exact=0")
    assert [u.pk for u in response.context["cl"].result_list] == [inactive.pk]


def test_user_page_deactivates_through_the_action_only(admin_browser, admin_user):
    member = UserFactory()
    page = admin_browser.get(f"/admin/core/user/{member.pk}/change/").content.decode()
    assert 'name="is_active"' not in page and "use the action on the user list" in page


# --- settings checks ---------------------------------------------------------------------------------


def check_ids() -> set[str]:
    return {message.id for message in check_signup_settings()}


def test_check_refuses_an_unknown_mode(settings):
    settings.IMAGINEER_SIGNUP = "sometimes"
    [error] = check_signup_settings()
    assert error.id == "imagineer.E010"
    assert "'sometimes'" in error.msg and "closed, allowlist, open" in error.msg


def test_checks_pass_on_the_defaults():
    assert check_ids() == set()


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"IMAGINEER_SIGNUP_EMAILS": ["ok@example.com", "example.com"]}, "imagineer.E011"),
        ({"IMAGINEER_SIGNUP_DOMAINS": ["someone@example.com"]}, "imagineer.E012"),
        ({"IMAGINEER_SIGNUP_DOMAINS": ["localhost"]}, "imagineer.E012"),
        ({"IMAGINEER_INVITE_DAYS": 0}, "imagineer.E013"),
        ({"IMAGINEER_INVITE_DAYS": 1000}, "imagineer.E013"),
        ({"IMAGINEER_SIGNUP": "allowlist"}, "imagineer.W010"),
    ],
)
def test_checks_name_what_is_wrong(settings, overrides, check_id):
    settings.IMAGINEER_SIGNUP_EMAILS, settings.IMAGINEER_SIGNUP_DOMAINS = [], []
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert check_ids() == {check_id}
