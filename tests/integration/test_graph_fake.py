"""The Microsoft identity platform + Graph fake driven by the real msal and requests, over https on
127.0.0.1 only."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msal
import pytest
import requests

from calsync.demo import demo_calendars
from tests.fakes.graph import FakeGraph, make_certificate
from tests.fakes.graph_events import event_id, load_mailbox

APP = "5e1f0c2a-0000-4000-8000-00000000a11c"
SECRET = "correct horse battery staple"
PUBLIC = "calsync-device-client"
ANN = "ann@acme.test"
BOB = "bob@acme.test"
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
DELEGATED = ["Calendars.Read", "User.Read"]
UTC_PREFER = 'outlook.timezone="UTC"'
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WINDOW = {"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}


pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        server.add_user(ANN, "Ann Arbor", time_zone="Europe/Berlin")
        server.add_user(BOB, "Bob Builder", manager=ANN)
        server.add_app(APP, secret=SECRET, roles=("Calendars.ReadWrite", "User.Read.All"))
        yield server
        assert server.internal_errors == []


def session_for(fake: FakeGraph) -> requests.Session:
    session = requests.Session()
    session.verify = str(fake.ca_path)
    session.trust_env = False
    return session


def confidential(fake: FakeGraph, credential: Any = SECRET, client_id: str = APP) -> Any:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=fake.authority,
        http_client=session_for(fake),
        instance_discovery=False,
    )


def app_token(fake: FakeGraph, client_id: str = APP, secret: str = SECRET) -> str:
    result = confidential(fake, secret, client_id).acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert "access_token" in result, result
    return str(result["access_token"])


def public(fake: FakeGraph, cache: Any = None) -> Any:
    return msal.PublicClientApplication(
        PUBLIC,
        authority=fake.authority,
        http_client=session_for(fake),
        instance_discovery=False,
        token_cache=cache or msal.SerializableTokenCache(),
    )


def get(
    fake: FakeGraph,
    path_or_url: str,
    token: str | None,
    params: dict[str, str] | None = None,
    prefer: str | None = UTC_PREFER,
    **headers: str,
) -> requests.Response:
    url = path_or_url if path_or_url.startswith("https://") else fake.graph_endpoint + path_or_url
    sent = dict(headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if prefer is not None:
        sent["Prefer"] = prefer
    with session_for(fake) as session:
        return session.get(url, params=params, headers=sent, timeout=30)


def delta_round(
    fake: FakeGraph, url: str, token: str, params: dict[str, str] | None = None, prefer: str = UTC_PREFER
) -> tuple[list[dict[str, Any]], str, int]:
    """Every page of one delta round: (items, deltaLink, number of pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = get(fake, url, token, params, prefer)
        assert response.status_code == 200, response.text
        pages += 1
        body = response.json()
        items.extend(body["value"])
        if "@odata.nextLink" in body:
            assert "$skiptoken=" in body["@odata.nextLink"] and "@odata.deltaLink" not in body
            url, params = body["@odata.nextLink"], None
            continue
        assert "$deltatoken=" in body["@odata.deltaLink"]
        return items, str(body["@odata.deltaLink"]), pages


def delta_url(mailbox: str = ANN) -> str:
    return f"/users/{mailbox}/calendarView/delta"


def weekly(
    subject: str, start: str, zone: str = "W. Europe Standard Time", minutes: int = 30, **extra: Any
) -> dict[str, Any]:
    """A weekly series on the start's weekday, 30 minutes, no end."""
    first = datetime.fromisoformat(start)
    end = first + timedelta(minutes=minutes)
    return {
        "subject": subject,
        "iCalUId": f"{subject.lower().replace(' ', '-')}@acme.test",
        "start": {"dateTime": first.isoformat(), "timeZone": zone},
        "end": {"dateTime": end.isoformat(), "timeZone": zone},
        "recurrence": {
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": [first.strftime("%A").lower()],
                "firstDayOfWeek": "sunday",
            },
            "range": {"type": "noEnd", "startDate": first.date().isoformat()},
        },
        "organizer": {"emailAddress": {"name": "Ann Arbor", "address": ANN}},
        "attendees": [
            {"type": "required", "status": {"response": "accepted"}, "emailAddress": {"address": BOB}},
        ],
        **extra,
    }


def error_of(response: requests.Response) -> tuple[int, str, str]:
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return response.status_code, error["code"], error["message"]


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


# ---------------------------------------------------------------------------------------------- identity


def test_client_credentials_with_a_secret(fake: FakeGraph) -> None:
    token = app_token(fake)
    discovery = [r for r in fake.requests if r.path.endswith("/.well-known/openid-configuration")]
    assert [(r.method, r.path, r.status) for r in discovery] == [
        ("GET", f"/{fake.tenant}/v2.0/.well-known/openid-configuration", 200)
    ]
    posts = [r for r in fake.requests if r.method == "POST"]
    assert [(r.path, r.body["grant_type"], r.body["scope"], r.status) for r in posts] == [
        (f"/{fake.tenant}/oauth2/v2.0/token", "client_credentials", GRAPH_DEFAULT[0], 200)
    ]
    assert SECRET not in repr(posts[0])  # the log keeps no secrets
    assert get(fake, delta_url(), token, WINDOW).status_code == 200


@pytest.mark.parametrize("form", ["thumbprint", "public_certificate"])
def test_client_credentials_with_a_certificate(fake: FakeGraph, form: str) -> None:
    key_pem, cert_pem, thumbprint = make_certificate()
    assert len(thumbprint) == 40 and thumbprint == thumbprint.upper()
    fake.add_app("cert-app", certificate_pem=cert_pem)
    # msal signs RS256 with x5t given a SHA-1 thumbprint, PS256 with x5t#S256 given the certificate
    credential = {
        "private_key": key_pem.decode(),
        form: thumbprint if form == "thumbprint" else cert_pem.decode(),
    }
    result = confidential(fake, credential, "cert-app").acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert "access_token" in result, result
    assert get(fake, delta_url(), result["access_token"], WINDOW).status_code == 200

    other_key, _, _ = make_certificate("someone else")
    forged = {"private_key": other_key.decode(), form: credential[form]}
    refused = confidential(fake, forged, "cert-app").acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert refused["error"] == "invalid_client" and refused["error_codes"] == [700027]


def test_wrong_secret_unknown_client_and_bad_scope(fake: FakeGraph) -> None:
    wrong = confidential(fake, "not the secret").acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert wrong["error"] == "invalid_client"
    assert wrong["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert wrong["error_codes"] == [7000215] and {"timestamp", "trace_id", "correlation_id"} <= set(wrong)
    assert [r.status for r in fake.requests if r.method == "POST"] == [401]

    unknown = confidential(fake, SECRET, "no-such-app").acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert (unknown["error"], unknown["error_codes"]) == ("unauthorized_client", [700016])

    scoped = confidential(fake).acquire_token_for_client(scopes=["Calendars.Read"])
    assert (scoped["error"], scoped["error_codes"]) == ("invalid_scope", [1002012])

    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            APP,
            client_credential=SECRET,
            authority=f"{fake.authority_host}/not-our-tenant",
            http_client=session_for(fake),
            instance_discovery=False,
        )


def test_device_flow_auto_approved_then_silent_refresh(fake: FakeGraph) -> None:
    fake.add_public_client(PUBLIC)
    fake.auto_approve = ANN
    cache = msal.SerializableTokenCache()
    app = public(fake, cache)
    flow = app.initiate_device_flow(scopes=DELEGATED)
    assert "enter the code " + flow["user_code"] in flow["message"]
    assert fake.device_codes[flow["user_code"]].state == "approved"
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    claims = result["id_token_claims"]
    assert (claims["preferred_username"], claims["aud"], claims["tid"]) == (ANN, PUBLIC, fake.tenant)
    assert claims["iss"] == f"{fake.authority}/v2.0"
    [account] = app.get_accounts()
    assert (account["username"], account["realm"]) == (ANN, fake.tenant)
    devicecode = next(r for r in fake.requests if r.path.endswith("/devicecode"))
    assert set(devicecode.body["scope"].split()) == {*DELEGATED, "offline_access", "openid", "profile"}

    # a delegated token acts as Ann: her mailbox (also as /me), nobody else's
    token = result["access_token"]
    assert get(fake, "/me/calendarView/delta", token, WINDOW).status_code == 200
    assert get(fake, delta_url(ANN.upper()), token, WINDOW).status_code == 200
    assert error_of(get(fake, delta_url(BOB), token, WINDOW))[:2] == (403, "ErrorAccessDenied")
    assert get(fake, "/me", token).json()["userPrincipalName"] == ANN
    assert fake.requests[-1].mailbox == ANN  # /me is logged as Ann's

    fake.expire_access_tokens()
    assert error_of(get(fake, "/me/calendarView/delta", token, WINDOW))[:2] == (
        401,
        "InvalidAuthenticationToken",
    )
    later = public(fake, cache)  # a later run: the cache's refresh token is redeemed
    refreshed = later.acquire_token_silent(DELEGATED, account=later.get_accounts()[0], force_refresh=True)
    assert refreshed and "access_token" in refreshed, refreshed
    assert fake.requests[-1].body["grant_type"] == "refresh_token"
    assert get(fake, "/me/calendarView/delta", refreshed["access_token"], WINDOW).status_code == 200

    fake.revoke_refresh_tokens()
    revoked = later.acquire_token_silent_with_error(
        DELEGATED, account=later.get_accounts()[0], force_refresh=True
    )
    assert revoked["error"] == "invalid_grant" and revoked["error_codes"] == [50173]


def test_device_flow_approved_from_another_thread_declined_and_expired(fake: FakeGraph) -> None:
    fake.add_public_client(PUBLIC)
    app = public(fake)
    flow = app.initiate_device_flow(scopes=["https://graph.microsoft.com/Calendars.Read"])
    approver = threading.Timer(0.3, fake.approve_device, (flow["user_code"], BOB))
    approver.start()
    started = time.monotonic()
    result = app.acquire_token_by_device_flow(flow)
    approver.join()
    assert "access_token" in result, result
    assert result["id_token_claims"]["preferred_username"] == BOB
    assert time.monotonic() - started < 5
    polls = [
        r.status for r in fake.requests if r.body and r.body.get("grant_type", "").endswith("device_code")
    ]
    assert polls[0] == 400 and polls[-1] == 200

    declined = app.initiate_device_flow(scopes=DELEGATED)
    fake.deny_device(declined["user_code"])
    assert app.acquire_token_by_device_flow(declined)["error"] == "authorization_declined"
    expired = app.initiate_device_flow(scopes=DELEGATED)
    fake.expire_device(expired["user_code"])
    assert app.acquire_token_by_device_flow(expired)["error"] == "expired_token"
    bad_scope = app.initiate_device_flow(scopes=["Mail.Send"])
    assert bad_scope["error"] == "invalid_scope"


# ---------------------------------------------------------------------------------------------- delta


def test_delta_pages_then_each_kind_of_change(fake: FakeGraph) -> None:
    token = app_token(fake)
    one = fake.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
    other = fake.put_event(ANN, weekly("Team sync", "2026-11-04T15:00:00", zone="Europe/Berlin"))
    single = fake.put_event(
        ANN,
        {
            "subject": "Dentist",
            "start": {"dateTime": "2026-11-20T08:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-20T09:00:00", "timeZone": "UTC"},
        },
    )
    prefer = f"{UTC_PREFER}, odata.maxpagesize=2"
    first = get(fake, delta_url(), token, WINDOW, prefer)
    assert first.headers["Preference-Applied"] == 'outlook.timezone="UTC", odata.maxpagesize=2'
    assert first.json()["@odata.context"] == f"{fake.graph_endpoint}/$metadata#Collection(event)"
    items, link, pages = delta_round(fake, delta_url(), token, WINDOW, prefer)
    assert pages == 5 and len(items) == 10  # 5 Mondays, 4 Wednesdays, the dentist
    assert Counter(i["type"] for i in items) == {"occurrence": 9, "singleInstance": 1}
    starts = [i["start"]["dateTime"] for i in items]
    assert starts == sorted(starts)
    occurrence = items[0]
    assert occurrence == {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": occurrence["@odata.etag"],
        "id": occurrence["id"],
        "type": "occurrence",
        "seriesMasterId": one["id"],
        "originalStart": "2026-11-02T08:00:00Z",
        "start": {"dateTime": "2026-11-02T08:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-02T08:30:00.0000000", "timeZone": "UTC"},
        "isCancelled": False,
    }
    dentist = by_id(items)[single["id"]]
    assert (dentist["subject"], dentist["organizer"]["emailAddress"]["address"]) == ("Dentist", ANN)
    assert not any(i["type"] == "seriesMaster" for i in items)
    ones = {i["originalStart"]: i["id"] for i in items if i.get("seriesMasterId") == one["id"]}

    def incremental() -> list[dict[str, Any]]:
        nonlocal link
        changed, link, _ = delta_round(fake, link, token, prefer=prefer)
        return changed

    assert incremental() == []  # nothing changed: one empty page

    # a new series: its occurrences in the window
    fake.put_event(BOB, weekly("Elsewhere", "2026-11-03T10:00:00"))  # another mailbox: not listed
    added = fake.put_event(ANN, weekly("Skip level", "2026-11-24T11:00:00", zone="Eastern Standard Time"))
    assert [(i["seriesMasterId"], i["originalStart"]) for i in incremental()] == [
        (added["id"], "2026-11-24T16:00:00Z")
    ]

    # an exception moved to the next day: same id, now an exception; the master changed, so its
    # other occurrences are listed again too
    moved = fake.put_exception(
        ANN,
        one["id"],
        datetime(2026, 11, 9, 9, tzinfo=BERLIN),
        {
            "start": {"dateTime": "2026-11-10T11:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-11-10T11:30:00", "timeZone": "W. Europe Standard Time"},
            "subject": "One on one (moved)",
        },
    )
    assert moved["id"] == ones["2026-11-09T08:00:00Z"] and moved["type"] == "exception"
    changed = by_id(incremental())
    assert set(changed) == set(ones.values())
    exception = changed[moved["id"]]
    assert (exception["type"], exception["originalStart"], exception["start"]["dateTime"]) == (
        "exception",
        "2026-11-09T08:00:00Z",
        "2026-11-10T10:00:00.0000000",
    )
    assert exception["subject"] == "One on one (moved)" and exception["seriesMasterId"] == one["id"]

    # an occurrence cancelled by its organizer vanishes; an attendee's kept copy says isCancelled
    fake.cancel_occurrence(ANN, one["id"], datetime(2026, 11, 16, 8, tzinfo=UTC))
    fake.cancel_occurrence(ANN, other["id"], datetime(2026, 11, 18, 15, tzinfo=BERLIN), keep=True)
    changed = by_id(incremental())
    assert changed[ones["2026-11-16T08:00:00Z"]] == {
        "@odata.type": "#microsoft.graph.event",
        "id": ones["2026-11-16T08:00:00Z"],
        "@removed": {"reason": "deleted"},
    }
    kept = [i for i in changed.values() if i.get("originalStart") == "2026-11-18T14:00:00Z"]
    assert [i["isCancelled"] for i in kept] == [True]
    others = [i for i in changed.values() if i.get("seriesMasterId") == other["id"]]
    assert [i["isCancelled"] for i in others] == [False, False, True, False]

    # an attendee added to the master: its occurrences are listed again (the exception is not)
    master = next(e for e in fake.events(ANN) if e["id"] == other["id"])
    carol = {
        "type": "required",
        "status": {"response": "none"},
        "emailAddress": {"address": "carol@acme.test"},
    }
    fake.patch_event(ANN, other["id"], {"attendees": [*master["attendees"], carol]})
    assert {i["id"] for i in incremental()} == {i["id"] for i in others}

    # a deleted series: all its instances are removed
    fake.delete_event(ANN, one["id"])
    removed = incremental()
    assert {i["id"] for i in removed} == set(ones.values()) - {ones["2026-11-16T08:00:00Z"]}
    assert all(i["@removed"] == {"reason": "deleted"} for i in removed)
    assert incremental() == []
    assert get(fake, f"/users/{ANN}/events/{one['id']}", token).status_code == 404


def test_delta_tokens_expire_with_410_and_bad_tokens_are_400(fake: FakeGraph) -> None:
    token = app_token(fake)
    fake.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
    fake.put_event(BOB, weekly("One on one", "2026-11-02T09:00:00"))
    _, ann_link, _ = delta_round(fake, delta_url(ANN), token, WINDOW)
    _, bob_link, _ = delta_round(fake, delta_url(BOB), token, WINDOW)
    halfway = get(fake, delta_url(ANN), token, WINDOW, f"{UTC_PREFER}, odata.maxpagesize=1").json()[
        "@odata.nextLink"
    ]

    fake.expire_delta_tokens(ANN)
    for link in (ann_link, halfway):
        status, code, message = error_of(get(fake, link, token))
        assert (status, code) == (410, "SyncStateNotFound") and "sync state" in message
    assert get(fake, bob_link, token).status_code == 200
    _, fresh, _ = delta_round(fake, delta_url(ANN), token, WINDOW)  # a full round starts over
    assert get(fake, fresh, token).status_code == 200

    assert error_of(get(fake, delta_url(ANN) + "?$deltatoken=garbage", token))[0] == 400
    assert error_of(get(fake, bob_link.replace(BOB, ANN), token))[0] == 400  # another mailbox's token
    fake.expire_delta_tokens()
    assert get(fake, bob_link, token).status_code == 410


def test_delta_request_validation(fake: FakeGraph) -> None:
    token = app_token(fake)
    status, code, message = error_of(
        get(fake, delta_url(), token, {"startDateTime": WINDOW["startDateTime"]})
    )
    assert (status, code) == (400, "ErrorInvalidParameter") and "StartDateTime and EndDateTime" in message
    for option in ("$select", "$filter", "$orderby", "$search", "$expand"):
        assert error_of(get(fake, delta_url(), token, {**WINDOW, option: "subject"}))[0] == 400
    bad = {"startDateTime": "yesterday", "endDateTime": WINDOW["endDateTime"]}
    assert error_of(get(fake, delta_url(), token, bad))[:2] == (400, "ErrorInvalidParameter")
    # without an offset the times are UTC, fractions and offsets are fine; the default page size is 10
    fake.put_event(ANN, weekly("Weekly", "2026-09-07T09:00:00", zone="UTC"))
    relaxed = {"startDateTime": "2026-01-01T00:00:00", "endDateTime": "2027-01-01T00:00:00.0000000+01:00"}
    response = get(fake, delta_url(), token, relaxed, prefer=None)
    assert len(response.json()["value"]) == 10 and "Preference-Applied" not in response.headers
    assert response.json()["value"][0]["start"]["timeZone"] == "UTC"


# ---------------------------------------------------------------------------------------------- faults


def test_injected_faults(fake: FakeGraph) -> None:
    token = app_token(fake)
    fake.fail_next(429, retry_after=7)
    throttled = get(fake, delta_url(), token, WINDOW)
    assert error_of(throttled)[:2] == (429, "TooManyRequests") and throttled.headers["Retry-After"] == "7"
    fake.fail_next(503, 2, path_contains="/calendarView")
    assert [error_of(get(fake, delta_url(), token, WINDOW))[:2] for _ in range(2)] == [
        (503, "ServiceUnavailable")
    ] * 2
    assert get(fake, delta_url(), token, WINDOW).status_code == 200
    fake.fail_next(500, code="generalException", path_contains=BOB)
    assert get(fake, delta_url(), token, WINDOW).status_code == 200  # filtered: Bob's requests only
    assert error_of(get(fake, delta_url(BOB), token, WINDOW))[:2] == (500, "generalException")

    fake.slow_next(1, 1.0)
    with pytest.raises(requests.Timeout), session_for(fake) as session:
        session.get(
            fake.graph_endpoint + delta_url(),
            params=WINDOW,
            headers={"Authorization": f"Bearer {token}"},
            timeout=0.3,
        )
    fake.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        get(fake, delta_url(), token, WINDOW)
    deadline = time.monotonic() + 5
    while fake.requests[-2].status == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.status for r in fake.requests[-2:]] == [200, 0]  # the slow one was answered, late

    # faults without a filter leave the identity platform alone; a filter can aim at it
    fake.fail_next(503)
    assert "access_token" in confidential(fake).acquire_token_for_client(scopes=GRAPH_DEFAULT)
    fake.clear_faults()
    fake.fail_next(400, code="invalid_request", path_contains="/oauth2/v2.0/token")
    assert confidential(fake).acquire_token_for_client(scopes=GRAPH_DEFAULT)["error"] == "invalid_request"
    fake.fail_next(503, path_contains="/oauth2/v2.0/token")
    with pytest.raises(msal.exceptions.MsalServiceError):  # msal raises a token endpoint's 5xx
        confidential(fake).acquire_token_for_client(scopes=GRAPH_DEFAULT)


def test_401_403_and_404(fake: FakeGraph) -> None:
    token = app_token(fake)
    missing = get(fake, delta_url(), None, WINDOW)
    assert error_of(missing) == (401, "InvalidAuthenticationToken", "Access token is empty.")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
    assert error_of(get(fake, delta_url(), "made-up", WINDOW))[:2] == (401, "InvalidAuthenticationToken")
    fake.expire_access_tokens()
    expired = get(fake, delta_url(), token, WINDOW)
    assert (
        error_of(expired)[:2] == (401, "InvalidAuthenticationToken") and "WWW-Authenticate" in expired.headers
    )
    token = app_token(fake)  # a new token works again
    assert get(fake, delta_url(), token, WINDOW).status_code == 200

    # no admin consent: a token, but every mailbox says no
    fake.add_app("unconsented", secret=SECRET, roles=())
    bare = app_token(fake, "unconsented")
    assert error_of(get(fake, delta_url(), bare, WINDOW)) == (
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
    assert error_of(get(fake, "/users", bare))[:2] == (403, "Authorization_RequestDenied")

    # RBAC for Applications: only Ann's mailbox; roles change with the next token
    fake.add_app("scoped", secret=SECRET, mailboxes={ANN.upper()})
    scoped = app_token(fake, "scoped")
    assert get(fake, delta_url(ANN), scoped, WINDOW).status_code == 200
    assert error_of(get(fake, delta_url(BOB), scoped, WINDOW))[:2] == (403, "ErrorAccessDenied")
    fake.restrict("scoped", None)
    assert get(fake, delta_url(BOB), scoped, WINDOW).status_code == 200
    fake.set_roles("scoped", ())
    assert get(fake, delta_url(BOB), scoped, WINDOW).status_code == 200  # roles are in the token
    assert get(fake, delta_url(BOB), app_token(fake, "scoped"), WINDOW).status_code == 403

    fake.add_user("nobox@acme.test", "No Mailbox", mailbox=False)
    assert error_of(get(fake, delta_url("ghost@acme.test"), token, WINDOW)) == (
        404,
        "ErrorInvalidUser",
        "The requested user 'ghost@acme.test' is invalid.",
    )
    assert error_of(get(fake, delta_url("nobox@acme.test"), token, WINDOW))[:2] == (
        404,
        "MailboxNotEnabledForRESTAPI",
    )
    assert [r.mailbox for r in fake.requests[-2:]] == ["ghost@acme.test", "nobox@acme.test"]


# ---------------------------------------------------------------------------------------------- events


def test_get_and_patch_with_etags(fake: FakeGraph) -> None:
    token = app_token(fake)
    master = fake.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
    url = f"/users/{ANN}/events/{master['id']}"
    assert "=" in master["id"]  # Exchange-looking ids need quoting in paths
    fetched = get(fake, url, token, {"$select": "subject,recurrence,originalStartTimeZone"})
    body = fetched.json()
    assert set(body) == {
        "@odata.context",
        "@odata.etag",
        "id",
        "subject",
        "recurrence",
        "originalStartTimeZone",
    }
    assert body["@odata.etag"] == f'W/"{master["changeKey"]}"' == fetched.headers["ETag"]
    assert body["originalStartTimeZone"] == "W. Europe Standard Time"
    assert body["recurrence"]["range"]["recurrenceTimeZone"] == "W. Europe Standard Time"
    whole = get(fake, url, token).json()
    assert whole["start"] == {"dateTime": "2026-11-02T08:00:00.0000000", "timeZone": "UTC"}
    assert whole["type"] == "seriesMaster" and whole["iCalUId"] == "one-on-one@acme.test"
    assert error_of(get(fake, url, token, {"$select": "nonsense"}))[0] == 400

    with session_for(fake) as session:

        def patch(etag: str, changes: dict[str, Any], bearer: str = token) -> requests.Response:
            headers = {"Authorization": f"Bearer {bearer}", "If-Match": etag, "Prefer": UTC_PREFER}
            return session.patch(fake.graph_endpoint + url, json=changes, headers=headers, timeout=30)

        stale = patch('W/"not-the-change-key"', {"subject": "Renamed"})
        assert error_of(stale)[:2] == (412, "ErrorIrresolvableConflict")
        done = patch(body["@odata.etag"], {"subject": "Renamed"})
        assert done.status_code == 200, done.text
        assert done.json()["subject"] == "Renamed" and done.json()["@odata.etag"] != body["@odata.etag"]
        assert done.json()["lastModifiedDateTime"] >= master["lastModifiedDateTime"]
        assert fake.requests[-1].body == {"subject": "Renamed"}
        assert error_of(patch(body["@odata.etag"], {"subject": "Again"}))[0] == 412

        fake.add_app("reader", secret=SECRET, roles=("Calendars.Read",))
        read_only = patch(done.json()["@odata.etag"], {"subject": "Nope"}, app_token(fake, "reader"))
        assert error_of(read_only)[:2] == (403, "ErrorAccessDenied")

    items, _, _ = delta_round(fake, delta_url(), token, WINDOW)
    occurrence = get(fake, f"/users/{ANN}/events/{items[0]['id']}", token).json()
    assert (occurrence["type"], occurrence["subject"], occurrence["seriesMasterId"]) == (
        "occurrence",
        "Renamed",
        master["id"],
    )


def test_full_occurrences_carry_the_masters_fields(fake: FakeGraph) -> None:
    token = app_token(fake)
    master = fake.put_event(
        ANN, weekly("One on one", "2026-11-02T09:00:00", lastModifiedDateTime="2026-10-01T08:00:00Z")
    )
    fake.full_occurrences = True
    items, _, _ = delta_round(fake, delta_url(), token, WINDOW)
    first = items[0]
    assert first["type"] == "occurrence" and first["subject"] == "One on one"
    assert first["iCalUId"] == master["iCalUId"] and first["attendees"] == master["attendees"]
    assert first["lastModifiedDateTime"] == "2026-10-01T08:00:00Z" and "recurrence" not in first
    assert first["changeKey"] != master["changeKey"] and first["id"] != master["id"]


def test_windows_zones_and_the_preferred_zone(fake: FakeGraph) -> None:
    token = app_token(fake)
    # 9:00 in New York across the end of US daylight saving time (1 November 2026)
    master = fake.put_event(ANN, weekly("East coast", "2026-10-26T09:00:00", zone="Eastern Standard Time"))
    window = {"startDateTime": "2026-10-25T00:00:00Z", "endDateTime": "2026-11-08T00:00:00Z"}
    items, _, _ = delta_round(fake, delta_url(), token, window)
    assert [i["originalStart"] for i in items] == ["2026-10-26T13:00:00Z", "2026-11-02T14:00:00Z"]
    for zone, expected in (
        ("Pacific Standard Time", ["2026-10-26T06:00:00.0000000", "2026-11-02T06:00:00.0000000"]),
        ("Europe/Berlin", ["2026-10-26T14:00:00.0000000", "2026-11-02T15:00:00.0000000"]),
        ("Eastern Standard Time", ["2026-10-26T09:00:00.0000000", "2026-11-02T09:00:00.0000000"]),
    ):
        items, _, _ = delta_round(fake, delta_url(), token, window, f'outlook.timezone="{zone}"')
        assert [i["start"] for i in items] == [{"dateTime": d, "timeZone": zone} for d in expected]
    response = get(
        fake, f"/users/{ANN}/events/{master['id']}", token, prefer='outlook.timezone="Central Standard Time"'
    )
    assert response.json()["start"] == {
        "dateTime": "2026-10-26T08:00:00.0000000",
        "timeZone": "Central Standard Time",
    }
    assert response.headers["Preference-Applied"] == 'outlook.timezone="Central Standard Time"'
    for name in ("GMT Standard Time", "UTC"):
        fake.put_event(ANN, weekly(f"In {name}", "2026-10-27T09:00:00", zone=name))
    items, _, _ = delta_round(fake, delta_url(), token, window)
    starts = {i["seriesMasterId"]: i["originalStart"] for i in items if i["originalStart"] < "2026-10-28"}
    assert sorted(starts.values()) == ["2026-10-26T13:00:00Z", "2026-10-27T09:00:00Z", "2026-10-27T09:00:00Z"]


def test_all_day_events_are_never_shifted(fake: FakeGraph) -> None:
    token = app_token(fake)
    fake.put_event(
        ANN,
        {
            "subject": "Offsite",
            "isAllDay": True,
            "start": {"dateTime": "2026-11-10T00:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-11-12T00:00:00", "timeZone": "Europe/Berlin"},
        },
    )
    series = weekly("Gym", "2026-11-02T00:00:00", zone="UTC", minutes=24 * 60, isAllDay=True)
    series["recurrence"]["range"] = {"type": "numbered", "startDate": "2026-11-02", "numberOfOccurrences": 3}
    fake.put_event(ANN, series)
    items, _, _ = delta_round(fake, delta_url(), token, WINDOW, 'outlook.timezone="Pacific Standard Time"')
    days = [(i["start"]["dateTime"][:10], i["end"]["dateTime"], i["start"]["timeZone"]) for i in items]
    assert days == [
        ("2026-11-02", "2026-11-03T00:00:00.0000000", "Pacific Standard Time"),
        ("2026-11-09", "2026-11-10T00:00:00.0000000", "Pacific Standard Time"),
        ("2026-11-10", "2026-11-12T00:00:00.0000000", "Pacific Standard Time"),
        ("2026-11-16", "2026-11-17T00:00:00.0000000", "Pacific Standard Time"),
    ]


def test_recurrence_patterns(fake: FakeGraph) -> None:
    token = app_token(fake)

    def starts(pattern: dict[str, Any], rng: dict[str, Any], first: str = "2026-01-01T10:00:00") -> list[str]:
        event = weekly("Pattern", first, zone="UTC")
        event["recurrence"] = {"pattern": pattern, "range": {"startDate": first[:10], **rng}}
        stored = fake.put_event(ANN, event)
        window = {"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2027-12-31T00:00:00Z"}
        response = get(fake, f"/users/{ANN}/calendarView", token, {**window, "$top": "50"})
        fake.delete_event(ANN, stored["id"])
        return [i["start"]["dateTime"][:10] for i in response.json()["value"]]

    no_end = {"type": "noEnd"}
    assert starts({"type": "daily", "interval": 2}, {"type": "numbered", "numberOfOccurrences": 3}) == [
        "2026-01-01",
        "2026-01-03",
        "2026-01-05",
    ]
    weekdays = {
        "type": "weekly",
        "interval": 2,
        "daysOfWeek": ["monday", "friday"],
        "firstDayOfWeek": "monday",
    }
    assert starts(weekdays, {"type": "endDate", "endDate": "2026-01-19"}) == [
        "2026-01-02",
        "2026-01-12",
        "2026-01-16",
    ]
    last_day = {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}
    assert starts(last_day, {"type": "numbered", "numberOfOccurrences": 4}) == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
    ]
    second_tuesday = {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"}
    assert starts(second_tuesday, {"type": "endDate", "endDate": "2026-03-10"}) == [
        "2026-01-13",
        "2026-02-10",
        "2026-03-10",
    ]
    last_friday = {
        "type": "relativeYearly",
        "interval": 1,
        "daysOfWeek": ["friday"],
        "index": "last",
        "month": 11,
    }
    assert starts(last_friday, no_end) == ["2026-11-27", "2027-11-26"]
    birthday = {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2}
    assert starts(birthday, no_end) == ["2026-02-28", "2027-02-28"]
    with pytest.raises(ValueError, match="pattern type"):
        fake.put_event(
            ANN, {**weekly("Bad", "2026-01-01T10:00:00"), "recurrence": {"pattern": {"type": "hourly"}}}
        )


# ---------------------------------------------------------------------------------------------- users


def test_users_with_managers_and_paging(fake: FakeGraph) -> None:
    token = app_token(fake)
    carol = fake.add_user("carol@acme.test", "Carol Chen", manager=BOB, enabled=False, mailbox=False)
    params = {
        "$select": "id,displayName,mail,userPrincipalName,accountEnabled",
        "$expand": "manager($select=id,mail,userPrincipalName)",
        "$top": "2",
    }
    first = get(fake, "/users", token, params).json()
    assert first["@odata.context"] == f"{fake.graph_endpoint}/$metadata#users"
    second = get(fake, first["@odata.nextLink"], token).json()
    assert "@odata.nextLink" not in second and "$skiptoken=" in first["@odata.nextLink"]
    users = {u["userPrincipalName"]: u for u in first["value"] + second["value"]}
    assert set(users) == {ANN, BOB, "carol@acme.test"}
    assert "manager" not in users[ANN]
    assert users[BOB]["manager"] == {
        "@odata.type": "#microsoft.graph.user",
        "id": users[ANN]["id"],
        "mail": ANN,
        "userPrincipalName": ANN,
    }
    assert users["carol@acme.test"] == {
        "id": carol,
        "displayName": "Carol Chen",
        "mail": None,
        "userPrincipalName": "carol@acme.test",
        "accountEnabled": False,
        "manager": {
            "@odata.type": "#microsoft.graph.user",
            "id": users[BOB]["id"],
            "mail": BOB,
            "userPrincipalName": BOB,
        },
    }
    default = get(fake, "/users", token).json()["value"][0]
    assert "accountEnabled" not in default and {"id", "displayName", "mail", "businessPhones"} <= set(default)
    assert error_of(get(fake, "/users", token, {"$top": "1000"}))[0] == 400

    assert get(fake, f"/users/{BOB.upper()}/manager", token).json()["userPrincipalName"] == ANN
    assert get(fake, f"/users/{carol}/manager", token).json()["userPrincipalName"] == BOB
    assert error_of(get(fake, f"/users/{ANN}/manager", token))[:2] == (404, "Request_ResourceNotFound")
    fake.set_roles(APP, ("Calendars.Read",))
    token = app_token(fake)  # tokens issued from now on lack User.Read.All
    assert error_of(get(fake, "/users", token))[:2] == (403, "Authorization_RequestDenied")


# ---------------------------------------------------------------------------------------------- concurrency


def test_a_fifth_concurrent_request_per_mailbox_is_throttled(fake: FakeGraph) -> None:
    token = app_token(fake)

    def parallel(count: int) -> list[requests.Response]:
        fake.reset_log()
        fake.slow_next(count, 1.5, path_contains="/calendarView/delta")
        with ThreadPoolExecutor(max_workers=count) as pool:
            responses = list(pool.map(lambda _: get(fake, delta_url(), token, WINDOW), range(count)))
        fake.clear_faults()
        return responses

    responses = parallel(5)
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert error_of(refused)[:2] == (429, "ApplicationThrottled") and refused.headers["Retry-After"] == "1"
    assert fake.max_in_flight == {ANN: 5}

    responses = parallel(4)
    assert [r.status_code for r in responses] == [200] * 4
    assert fake.max_in_flight == {ANN: 4}


# ---------------------------------------------------------------------------------------------- the demo


def test_the_demo_org_round_trips_through_load_mailbox(fake: FakeGraph) -> None:
    token = app_token(fake)
    calendars = demo_calendars(date(2026, 11, 21))
    for owner, specs in calendars.items():
        load_mailbox(fake, f"{owner}@acme.test", specs, "Europe/Berlin")
    window = {"startDateTime": "2026-08-23T00:00:00Z", "endDateTime": "2027-02-19T00:00:00Z"}
    seen: dict[str, list[dict[str, Any]]] = {}
    for owner in calendars:
        items, _, _ = delta_round(
            fake, delta_url(f"{owner}@acme.test"), token, window, f"{UTC_PREFER}, odata.maxpagesize=200"
        )
        assert items, owner
        seen[owner] = items

    def instances(owner: str, uid: str) -> dict[str, dict[str, Any]]:
        master = event_id(f"{owner}@acme.test", uid)
        return {i["originalStart"]: i for i in seen[owner] if i.get("seriesMasterId") == master}

    # maya / priya: the EXDATE'd occurrence (9 Nov) is gone, the one of 26 Oct moved to the 27th
    for owner in ("maya", "priya"):
        mp = instances(owner, "maya-priya@acme.test")
        assert "2026-11-09T15:00:00Z" not in mp and "2026-11-02T15:00:00Z" in mp
        moved = mp["2026-10-26T15:00:00Z"]
        assert (moved["type"], moved["start"]["dateTime"], moved["subject"]) == (
            "exception",
            "2026-10-27T10:00:00.0000000",
            "Maya / Priya 1:1 (moved)",
        )
    maya_master = next(
        e
        for e in fake.events("maya@acme.test")
        if e["iCalUId"] == "maya-priya@acme.test" and e["type"] == "seriesMaster"
    )
    priya_master = next(
        e
        for e in fake.events("priya@acme.test")
        if e["iCalUId"] == "maya-priya@acme.test" and e["type"] == "seriesMaster"
    )
    assert maya_master["id"] != priya_master["id"]
    assert maya_master["lastModifiedDateTime"] == "2026-01-01T02:00:00.0000000Z"  # its override's SEQUENCE 2
    # scheduled by Maya's assistant: both accepted, neither organises it
    assert (maya_master["responseStatus"]["response"], priya_master["responseStatus"]["response"]) == (
        "accepted",
        "accepted",
    )
    assert maya_master["organizer"]["emailAddress"]["address"] == "kim.ea@acme.test"
    # diego / ava: Ava's out-of-office block (Outlook's OOF), all-day, the only one not shown as busy
    (away,) = [i for i in seen["ava"] if i.get("showAs") == "oof"]
    assert away["isAllDay"] and away["organizer"]["emailAddress"]["address"] == "ava@acme.test"
    assert {i.get("showAs") for o in seen.values() for i in o if i.get("type") != "occurrence"} == {
        "busy",
        "oof",
    }

    # lena / sam: Windows zone names kept; Lena's copy lost 9 Nov, Sam's stale copy still has it
    lena = instances("lena", "lena-sam@acme.test")
    sam = instances("sam", "lena-sam@acme.test")
    assert "2026-11-09T09:00:00Z" not in lena and "2026-11-09T09:00:00Z" in sam
    lena_master = get(
        fake, f"/users/lena@acme.test/events/{event_id('lena@acme.test', 'lena-sam@acme.test')}", token
    ).json()
    assert lena_master["originalStartTimeZone"] == "W. Europe Standard Time"
    assert {a["type"] for a in lena_master["attendees"]} == {"required", "resource"}

    # omar / diego: the EXDATE and the cancelled override both vanished
    assert sorted(instances("omar", "omar-diego@acme.test"))[:2] == [
        "2026-11-23T16:00:00Z",
        "2026-12-07T16:00:00Z",
    ]
    # priya / grace: the whole series is cancelled
    grace = instances("grace", "priya-grace@acme.test")
    assert grace and all(i["isCancelled"] for i in grace.values())
    # priya / hugo: Hugo declined the late occurrences, in his own answer too
    declined = [i for i in instances("hugo", "priya-hugo@acme.test").values() if i["type"] == "exception"]
    assert declined and {i["responseStatus"]["response"] for i in declined} == {"declined"}
    # diego / chloe: floating times in the org's zone
    chloe = get(
        fake, f"/users/diego@acme.test/events/{event_id('diego@acme.test', 'diego-chloe@acme.test')}", token
    ).json()
    assert chloe["originalStartTimeZone"] == "Europe/Berlin"
    # priya / ethan: the all-day offsite; fatima: the wholly cancelled one-off
    offsite = next(i for i in seen["ethan"] if i.get("subject") == "Priya <> Ethan offsite")
    assert offsite["isAllDay"] and offsite["start"]["dateTime"] == "2026-11-02T00:00:00.0000000"
    assert [i["isCancelled"] for i in seen["fatima"] if i["start"]["dateTime"].startswith("2026-11-16")] == [
        True
    ]


def test_the_fake_clock_stamps_changes() -> None:
    now = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    with FakeGraph(clock=lambda: now, page_size_default=1) as fake:
        fake.add_app(APP, secret=SECRET)
        stored = fake.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
        assert stored["lastModifiedDateTime"] == stored["createdDateTime"] == "2026-11-21T09:30:00.0000000Z"
        token = app_token(fake)
        first = get(fake, delta_url(), token, WINDOW, prefer=None).json()
        assert len(first["value"]) == 1 and "@odata.nextLink" in first  # page_size_default
        assert error_of(get(fake, delta_url("ghost@acme.test"), token, WINDOW))[0] == 404
        assert get(fake, delta_url("ghost@acme.test"), token, WINDOW).json()["error"]["innerError"][
            "date"
        ] == ("2026-11-21T09:30:00")
        assert fake.internal_errors == []


# ---------------------------------------------------------------------------------------------- bodies


TEAMS_BLOCK = (
    "<div>________________________________________________________________________________</div>\r\n"
    '<div style="margin-bottom:24px"><span style="font-size:24px">Microsoft Teams meeting</span></div>\r\n'
    '<div><a href="https://teams.microsoft.com/l/meetup-join/19%3ameeting_Zm9v%40thread.v2/0?context=%7b%22'
    'Tid%22%3a%22t%22%7d" target="_blank">Join the meeting now</a></div>\r\n'
    "<div>Meeting ID: 123 456 789 0 &nbsp;Passcode: aB3cD4</div>\r\n"
    "<div>________________________________________________________________________________</div>"
)


def patch_event(
    fake: FakeGraph,
    mailbox: str,
    event_id: str,
    changes: dict[str, Any],
    token: str,
    **headers: str,
) -> requests.Response:
    sent = {"Authorization": f"Bearer {token}", "Prefer": UTC_PREFER, **headers}
    with session_for(fake) as session:
        return session.patch(
            f"{fake.graph_endpoint}/users/{mailbox}/events/{event_id}", json=changes, headers=sent, timeout=30
        )


def test_bodies_are_wrapped_kept_byte_for_byte_and_converted_to_text(fake: FakeGraph) -> None:
    token = app_token(fake)
    meeting = fake.put_event(
        ANN,
        weekly("One on one", "2026-11-02T09:00:00", body={"contentType": "html", "content": TEAMS_BLOCK}),
    )
    wrapped = (
        '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n'
        f"<body>\r\n{TEAMS_BLOCK}\r\n</body>\r\n</html>\r\n"
    )
    url = f"/users/{ANN}/events/{meeting['id']}"
    read = get(fake, url, token, {"$select": "body"})
    assert set(read.json()) == {"@odata.context", "@odata.etag", "id", "body"}
    assert read.json()["body"] == {"contentType": "html", "content": wrapped}
    assert meeting["bodyPreview"].startswith("____") and "Join the meeting now" in meeting["bodyPreview"]

    # a client inserts its own section and PATCHes the whole document back: kept as sent
    section = '<div id="calsync-agenda"><a href="https://contoso-my.sharepoint.com/x">Agenda</a></div>\r\n'
    mine = wrapped.replace("<body>\r\n", "<body>\r\n" + section, 1)
    etag = read.json()["@odata.etag"]
    done = patch_event(fake, ANN, meeting["id"], {"body": {"contentType": "html", "content": mine}}, token)
    assert done.status_code == 200, done.text
    assert done.json()["body"]["content"] == mine
    assert get(fake, url, token, {"$select": "body"}).json()["body"]["content"] == mine
    assert fake.meeting_updates == [(ANN, meeting["id"])]
    stale = patch_event(fake, ANN, meeting["id"], {"subject": "x"}, token, **{"If-Match": etag})
    assert error_of(stale)[:2] == (412, "ErrorIrresolvableConflict")
    assert fake.meeting_updates == [(ANN, meeting["id"])]  # a refused PATCH mails nobody

    # text on request; html (the default) on request too
    text = get(fake, url, token, {"$select": "body"}, prefer='outlook.body-content-type="text"')
    assert text.headers["Preference-Applied"] == 'outlook.body-content-type="text"'
    body = text.json()["body"]
    assert body["contentType"] == "text" and "<div" not in body["content"]
    assert body["content"].startswith("Agenda<https://contoso-my.sharepoint.com/x>\r\n")
    assert "Join the meeting now<https://teams.microsoft.com/l/meetup-join/19%3ameeting_" in body["content"]
    html = get(fake, url, token, prefer=f'{UTC_PREFER}, outlook.body-content-type="html"')
    assert html.json()["body"]["content"] == mine
    assert html.headers["Preference-Applied"] == 'outlook.timezone="UTC", outlook.body-content-type="html"'

    # a fragment is wrapped; a text body is kept as text and converted to html on the way out
    fragment = patch_event(
        fake, ANN, meeting["id"], {"body": {"contentType": "HTML", "content": "<p>Hi</p>"}}, token
    )
    assert fragment.json()["body"]["content"] == wrapped.replace(TEAMS_BLOCK, "<p>Hi</p>")
    plain = fake.put_event(
        ANN,
        {**weekly("Plain", "2026-11-03T09:00:00"), "body": {"contentType": "text", "content": "a < b\nc"}},
    )
    as_html = get(fake, f"/users/{ANN}/events/{plain['id']}", token).json()["body"]
    assert as_html["contentType"] == "html" and "<div>a &lt; b<br>\r\nc</div>" in as_html["content"]
    assert get(
        fake, f"/users/{ANN}/events/{plain['id']}", token, prefer='outlook.body-content-type="text"'
    ).json()["body"] == {"contentType": "text", "content": "a < b\nc"}

    # without a body: an empty html document
    bare = fake.put_event(
        ANN, {"subject": "Bare", **{k: weekly("x", "2026-11-05T09:00:00")[k] for k in ("start", "end")}}
    )
    assert bare["body"] == {"contentType": "html", "content": wrapped.replace(TEAMS_BLOCK, "")}

    # no update mail: a PATCH without attendees, in an attendee's copy, or of other properties
    copy_in_bob = fake.put_event(BOB, weekly("One on one", "2026-11-02T09:00:00"))
    assert copy_in_bob["isOrganizer"] is False
    assert patch_event(
        fake, BOB, copy_in_bob["id"], {"body": {"contentType": "html", "content": "x"}}, token
    ).ok
    assert patch_event(fake, ANN, bare["id"], {"subject": "Still bare"}, token).ok
    assert patch_event(fake, ANN, meeting["id"], {"isReminderOn": False}, token).ok
    assert fake.meeting_updates == [(ANN, meeting["id"])] * 2

    # writing needs Calendars.ReadWrite
    fake.add_app("reader", secret=SECRET, roles=("Calendars.Read",))
    denied = patch_event(fake, ANN, meeting["id"], {"subject": "x"}, app_token(fake, "reader"))
    assert error_of(denied)[:2] == (403, "ErrorAccessDenied")
    assert error_of(patch_event(fake, ANN, meeting["id"], {"body": "nonsense"}, token))[0] == 400


def test_occurrence_bodies_follow_the_master_until_patched(fake: FakeGraph) -> None:
    token = app_token(fake)
    master = fake.put_event(
        ANN, weekly("One on one", "2026-11-02T09:00:00", body={"contentType": "html", "content": TEAMS_BLOCK})
    )
    view = get(fake, f"/users/{ANN}/calendarView", token, {**WINDOW, "$select": "body,subject"}).json()[
        "value"
    ]
    assert len(view) == 5 and all(TEAMS_BLOCK in i["body"]["content"] for i in view)
    first, second = view[0]["id"], view[1]["id"]

    def body_of(event_id: str) -> str:
        return str(
            get(fake, f"/users/{ANN}/events/{event_id}", token, {"$select": "body"}).json()["body"]["content"]
        )

    # the master's new body shows on its plain occurrences
    new_master = patch_event(
        fake, ANN, master["id"], {"body": {"contentType": "html", "content": "<p>Series</p>"}}, token
    )
    assert new_master.status_code == 200
    assert "<p>Series</p>" in body_of(first) and "<p>Series</p>" in body_of(second)

    # an occurrence's own body makes it an exception (same id); the others still follow the master
    own = patch_event(
        fake, ANN, first, {"body": {"contentType": "html", "content": "<p>Only this week</p>"}}, token
    )
    assert own.status_code == 200, own.text
    assert (own.json()["id"], own.json()["type"], own.json()["seriesMasterId"]) == (
        first,
        "exception",
        master["id"],
    )
    assert "<p>Only this week</p>" in body_of(first)
    patch_event(fake, ANN, master["id"], {"body": {"contentType": "html", "content": "<p>Later</p>"}}, token)
    assert "<p>Later</p>" in body_of(second) and "<p>Only this week</p>" in body_of(first)
    assert fake.meeting_updates == [(ANN, master["id"]), (ANN, first), (ANN, master["id"])]


def test_events_listing_with_filters_and_paging(fake: FakeGraph) -> None:
    token = app_token(fake)
    series = fake.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
    fake.put_exception(ANN, series["id"], datetime(2026, 11, 9, 9, tzinfo=BERLIN), {"subject": "Moved"})
    singles = [
        fake.put_event(
            ANN,
            {
                "subject": f"Single {n}",
                "iCalUId": f"single-{n}@acme.test",
                "start": {"dateTime": f"2026-11-1{n}T08:00:00", "timeZone": "UTC"},
                "end": {"dateTime": f"2026-11-1{n}T09:00:00", "timeZone": "UTC"},
            },
        )
        for n in range(3)
    ]
    fake.put_event(BOB, weekly("One on one", "2026-11-02T09:00:00"))
    everything = get(fake, f"/users/{ANN}/events", token).json()
    assert [(e["type"], e["subject"]) for e in everything["value"]] == [
        ("seriesMaster", "One on one"),
        *[("singleInstance", f"Single {n}") for n in range(3)],
    ]
    assert all("@odata.etag" in e for e in everything["value"])

    found = get(
        fake,
        f"/users/{ANN}/events",
        token,
        {"$filter": "iCalUId eq 'one-on-one@acme.test'", "$select": "id,subject"},
    )
    assert [(set(e), e["id"]) for e in found.json()["value"]] == [
        ({"@odata.etag", "id", "subject"}, series["id"])
    ]
    both = "type eq 'seriesMaster' and iCalUId eq 'one-on-one@acme.test'"
    assert [e["id"] for e in get(fake, f"/users/{ANN}/events", token, {"$filter": both}).json()["value"]] == [
        series["id"]
    ]
    none = "type eq 'singleInstance' and iCalUId eq 'one-on-one@acme.test'"
    assert get(fake, f"/users/{ANN}/events", token, {"$filter": none}).json()["value"] == []
    quoted = fake.put_event(ANN, {**singles[0], "id": None, "iCalUId": "o'brien@acme.test"})
    escaped = get(fake, f"/users/{ANN}/events", token, {"$filter": "iCalUId eq 'o''brien@acme.test'"})
    assert [e["id"] for e in escaped.json()["value"]] == [quoted["id"]]
    for bad in ("subject eq 'x'", "iCalUId ne 'x'", "iCalUId eq 'x' or type eq 'y'", "iCalUId eq 'x' and"):
        assert error_of(get(fake, f"/users/{ANN}/events", token, {"$filter": bad}))[:2] == (
            400,
            "ErrorInvalidUrlQueryFilter",
        ), bad

    # paging: $top, then @odata.nextLink
    seen: list[str] = []
    url, params = f"/users/{ANN}/events", {"$top": "2", "$select": "subject"}
    while True:
        page = get(fake, url, token, params).json()
        seen.extend(e["subject"] for e in page["value"])
        if "@odata.nextLink" not in page:
            break
        url, params = page["@odata.nextLink"], {}
    assert seen == ["One on one", "Single 0", "Single 0", "Single 1", "Single 2"]


def test_instances_of_a_series(fake: FakeGraph) -> None:
    token = app_token(fake)
    master = fake.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
    moved = fake.put_exception(
        ANN,
        master["id"],
        datetime(2026, 11, 9, 9, tzinfo=BERLIN),
        {
            "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-12-01T10:30:00", "timeZone": "W. Europe Standard Time"},
        },
    )
    fake.cancel_occurrence(ANN, master["id"], datetime(2026, 11, 16, 9, tzinfo=BERLIN))
    url = f"/users/{ANN}/events/{master['id']}/instances"
    november = get(fake, url, token, WINDOW).json()["value"]
    calendar_view = get(fake, f"/users/{ANN}/calendarView", token, {**WINDOW, "$top": "50"}).json()["value"]
    assert [i["id"] for i in november] == [i["id"] for i in calendar_view]
    assert [i["originalStart"] for i in november] == [
        "2026-11-02T08:00:00Z",
        "2026-11-23T08:00:00Z",
        "2026-11-30T08:00:00Z",
    ]
    assert {(i["type"], i["seriesMasterId"], i["subject"]) for i in november} == {
        ("occurrence", master["id"], "One on one")
    }
    assert all(i["@odata.etag"].startswith('W/"') for i in november)

    # the moved exception is listed where it is now, in the zone asked for, with the id it always had
    december = get(
        fake,
        url,
        token,
        {"startDateTime": "2026-12-01T00:00:00Z", "endDateTime": "2026-12-02T00:00:00Z"},
        prefer='outlook.timezone="Europe/Berlin"',
    ).json()["value"]
    assert [(i["id"], i["type"], i["originalStart"], i["start"]) for i in december] == [
        (
            moved["id"],
            "exception",
            "2026-11-09T08:00:00Z",
            {"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "Europe/Berlin"},
        )
    ]
    selected = get(fake, url, token, {**WINDOW, "$select": "start", "$top": "2"}).json()
    assert [set(i) for i in selected["value"]] == [{"@odata.etag", "id", "start"}] * 2
    assert "$skip=2" in selected["@odata.nextLink"]
    assert len(get(fake, selected["@odata.nextLink"], token).json()["value"]) == 1

    assert error_of(get(fake, url, token, {"startDateTime": "2026-11-01T00:00:00Z"}))[:2] == (
        400,
        "ErrorInvalidParameter",
    )
    single = fake.put_event(ANN, {"subject": "Single", **{k: master[k] for k in ("start", "end")}})
    assert get(fake, f"/users/{ANN}/events/{single['id']}/instances", token, WINDOW).json()["value"] == []
    assert error_of(get(fake, f"/users/{ANN}/events/AAMkADnope=/instances", token, WINDOW))[0] == 404


# ---------------------------------------------------------------------------------------------- free/busy


def schedule(
    fake: FakeGraph,
    token: str | None,
    body: dict[str, Any],
    asker: str = ANN,
    prefer: str | None = UTC_PREFER,
    path: str = "calendar/getSchedule",
) -> requests.Response:
    sent = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if prefer is not None:
        sent["Prefer"] = prefer
    with session_for(fake) as session:
        return session.post(
            f"{fake.graph_endpoint}/users/{asker}/{path}", json=body, headers=sent, timeout=30
        )


def span(start: str, end: str, people: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "schedules": people,
        "startTime": {"dateTime": start, "timeZone": "UTC"},
        "endTime": {"dateTime": end, "timeZone": "UTC"},
        **extra,
    }


def test_get_schedule_answers_each_schedule_whole_items_and_their_view(fake: FakeGraph) -> None:
    fake.put_event(BOB, weekly("Standup", "2026-11-02T09:00:00", zone="UTC", organizer=None, attendees=[]))
    fake.put_event(  # all-day in Berlin: its midnights there
        BOB,
        {
            "subject": "Away",
            "showAs": "oof",
            "isAllDay": True,
            "start": {"dateTime": "2026-11-04T00:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-11-06T00:00:00", "timeZone": "W. Europe Standard Time"},
        },
    )
    fake.put_event(  # begins before the span: answered whole
        BOB,
        {
            "subject": "Maybe",
            "showAs": "tentative",
            "start": {"dateTime": "2026-11-01T22:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-02T01:00:00", "timeZone": "UTC"},
        },
    )
    fake.put_event(
        BOB,
        {
            "subject": "Called off",
            "isCancelled": True,
            "start": {"dateTime": "2026-11-03T12:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-03T13:00:00", "timeZone": "UTC"},
        },
    )
    for subject, sensitivity in (("Lunch", "normal"), ("Doctor", "private")):
        fake.put_event(
            ANN,
            {
                "subject": subject,
                "sensitivity": sensitivity,
                "location": {"displayName": "Downtown"},
                "start": {"dateTime": "2026-11-02T11:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-11-02T12:00:00", "timeZone": "UTC"},
            },
        )
    token = app_token(fake)
    response = schedule(
        fake,
        token,
        span("2026-11-02T00:00:00", "2026-11-06T00:00:00", ["Bob@Acme.test", ANN, "ghost@acme.test"]),
    )
    assert response.status_code == 200, response.text
    bob, ann, ghost = response.json()["value"]
    assert [bob["scheduleId"], ann["scheduleId"], ghost["scheduleId"]] == [
        "Bob@Acme.test",
        ANN,
        "ghost@acme.test",
    ]
    # someone else's items: when and how busy, nothing more; the cancelled one takes no time
    assert [(i["status"], i["start"]["dateTime"], i["end"]["dateTime"]) for i in bob["scheduleItems"]] == [
        ("tentative", "2026-11-01T22:00:00.0000000", "2026-11-02T01:00:00.0000000"),
        ("busy", "2026-11-02T09:00:00.0000000", "2026-11-02T09:30:00.0000000"),
        ("oof", "2026-11-03T23:00:00.0000000", "2026-11-05T23:00:00.0000000"),
    ]
    assert all(set(i) == {"status", "start", "end"} for i in bob["scheduleItems"])
    assert all(i["start"]["timeZone"] == "UTC" for i in bob["scheduleItems"])
    view = bob["availabilityView"]  # 30-minute slots from 2 Nov 00:00 UTC
    assert len(view) == 4 * 48 and view[:2] == "11" and view[18] == "2" and view[20] == "0"
    assert view[2 * 48 - 2 : 2 * 48] == "33" and view[4 * 48 - 2 :] == "00" and view[3 * 48 + 45] == "3"
    assert bob["workingHours"]["daysOfWeek"][0] == "monday"
    # the caller's own calendar says more, a private event less
    own = sorted(ann["scheduleItems"], key=lambda i: i["isPrivate"])
    assert [{k: i.get(k) for k in ("subject", "location", "isPrivate")} for i in own] == [
        {"subject": "Lunch", "location": "Downtown", "isPrivate": False},
        {"subject": None, "location": None, "isPrivate": True},
    ]
    assert ghost == {
        "scheduleId": "ghost@acme.test",
        "error": {
            "message": "Unable to resolve e-mail address ghost@acme.test to an Active Directory object.",
            "responseCode": "5009",
        },
    }
    # the preferred zone; the names in any case (the concept page writes them so), the interval a string
    berlin = schedule(
        fake,
        token,
        {
            "Schedules": [BOB],
            "StartTime": {"dateTime": "2026-11-02T01:00:00", "timeZone": "W. Europe Standard Time"},
            "EndTime": {"dateTime": "2026-11-03T01:00:00", "timeZone": "W. Europe Standard Time"},
            "availabilityViewInterval": "1440",
        },
        prefer='outlook.timezone="Europe/Berlin"',
        path="calendar/getschedule",
    )
    assert berlin.status_code == 200, berlin.text
    assert berlin.headers["Preference-Applied"] == 'outlook.timezone="Europe/Berlin"'
    (only,) = berlin.json()["value"]
    assert only["availabilityView"] == "2"
    assert [(i["start"]["dateTime"], i["start"]["timeZone"]) for i in only["scheduleItems"]] == [
        ("2026-11-01T23:00:00.0000000", "Europe/Berlin"),
        ("2026-11-02T10:00:00.0000000", "Europe/Berlin"),
    ]
    assert fake.requests[-1].body["Schedules"] == [BOB] and fake.requests[-1].mailbox == ANN


def test_get_schedule_limits_and_refusals(fake: FakeGraph) -> None:
    token = app_token(fake)
    people = [f"p{i}@acme.test" for i in range(21)]
    assert (
        schedule(fake, token, span("2026-11-01T00:00:00", "2026-11-02T00:00:00", people[:20])).status_code
        == 200
    )
    assert error_of(schedule(fake, token, span("2026-11-01T00:00:00", "2026-11-02T00:00:00", people))) == (
        400,
        "ErrorMailboxDataArrayTooBig",
        "There are too many target users in the EmailAddress array. The allowed size = 20; the actual "
        "size = 21.",
    )
    # the span must be less than 62 days (documented); 42 is the availability service's own default
    assert schedule(fake, token, span("2026-09-01T00:00:00", "2026-11-01T23:59:00", [BOB])).status_code == 200
    too_long = schedule(fake, token, span("2026-09-01T00:00:00", "2026-11-02T00:00:00", [BOB]))
    assert error_of(too_long)[:2] == (400, "ErrorTimeIntervalTooBig")
    fake.schedule_max_days = 42
    assert error_of(schedule(fake, token, span("2026-09-01T00:00:00", "2026-10-13T00:00:00", [BOB])))[1] == (
        "ErrorTimeIntervalTooBig"
    )
    for body in (
        span("2026-11-02T00:00:00", "2026-11-01T00:00:00", [BOB]),  # ends before it starts
        span("2026-11-01T00:00:00", "2026-11-02T00:00:00", [BOB], availabilityViewInterval=4),
        span("2026-11-01T00:00:00", "2026-11-02T00:00:00", []),
        {"startTime": {"dateTime": "2026-11-01T00:00:00", "timeZone": "UTC"}},
        span("2026-11-01T00:00:00", "2026-11-02T00:00:00", [BOB]) | {"endTime": "tomorrow"},
    ):
        assert error_of(schedule(fake, token, body))[:2] == (400, "ErrorInvalidParameter"), body
    with session_for(fake) as session:
        wrong = session.get(
            f"{fake.graph_endpoint}/users/{ANN}/calendar/getSchedule",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    assert error_of(wrong)[:2] == (400, "BadRequest")
    # asked through a mailbox as any mailbox request is: consent, the user, the RBAC scope
    body = span("2026-11-01T00:00:00", "2026-11-02T00:00:00", [BOB])
    assert error_of(schedule(fake, None, body))[0] == 401
    assert error_of(schedule(fake, token, body, asker="ghost@acme.test"))[:2] == (404, "ErrorInvalidUser")
    fake.add_app("basic", secret=SECRET, roles=("Calendars.ReadBasic",))
    assert schedule(fake, app_token(fake, "basic"), body).status_code == 200
    fake.add_app("mail-only", secret=SECRET, roles=("Mail.Read",))
    assert error_of(schedule(fake, app_token(fake, "mail-only"), body))[:2] == (403, "ErrorAccessDenied")
    fake.add_app("scoped", secret=SECRET, mailboxes={BOB})
    scoped = app_token(fake, "scoped")
    assert error_of(schedule(fake, scoped, body, asker=ANN))[0] == 403
    assert schedule(fake, scoped, body | {"schedules": [ANN]}, asker=BOB).status_code == 200
    # throttled like any request, and counted in flight for the mailbox asked through
    fake.fail_next(429, retry_after=3, path_contains="getSchedule")
    throttled = schedule(fake, token, body)
    assert error_of(throttled)[:2] == (429, "TooManyRequests") and throttled.headers["Retry-After"] == "3"
    assert fake.max_in_flight[ANN] >= 1
