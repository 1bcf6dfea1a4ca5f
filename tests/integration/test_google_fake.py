"""The Google fake driven by the real client libraries: google-auth, google-auth-httplib2, httplib2 and
google-api-python-client (static discovery), over https on 127.0.0.1 only."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tests.fakes.google import FakeGoogle

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.events"
READONLY_SCOPE = "https://www.googleapis.com/auth/calendar.events.readonly"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
ANN = "ann@acme.test"
BOB = "bob@acme.test"
ADMIN = "it@acme.test"


pytestmark = pytest.mark.usefixtures("loopback_only")


_OPEN_HTTP: list[httplib2.Http] = []


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        server.add_calendar(ANN, "Europe/Berlin")
        server.add_calendar(BOB)
        server.grant_delegation(ADMIN)  # the Workspace admin who may read the directory
        try:
            yield server
        finally:
            while _OPEN_HTTP:  # httplib2 keeps connections open until told otherwise
                _OPEN_HTTP.pop().close()
        assert server.internal_errors == []


def plain_http(fake: FakeGoogle, **kwargs: Any) -> httplib2.Http:
    http = httplib2.Http(ca_certs=str(fake.ca_path), **kwargs)
    _OPEN_HTTP.append(http)
    return http


def from_info(info: dict[str, Any], scopes: tuple[str, ...] = (CALENDAR_SCOPE,)) -> Any:
    """A service account's credentials (google-auth is untyped; Any keeps mypy strict mode quiet)."""
    return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=list(scopes)
    )


def sa_credentials(
    fake: FakeGoogle, subject: str | None = ANN, scopes: tuple[str, ...] = (CALENDAR_SCOPE,)
) -> Any:
    creds = from_info(fake.service_account_info(), scopes)
    return creds.with_subject(subject) if subject else creds


def refresh(fake: FakeGoogle, creds: Any) -> None:
    creds.refresh(google_auth_httplib2.Request(plain_http(fake)))


def calendar_service(fake: FakeGoogle, creds: Any = None, **http_kwargs: Any) -> Any:
    authed = google_auth_httplib2.AuthorizedHttp(
        creds or sa_credentials(fake), http=plain_http(fake, **http_kwargs)
    )
    return build(
        "calendar",
        "v3",
        http=authed,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": fake.calendar_endpoint},
    )


def directory_service(fake: FakeGoogle, subject: str = ADMIN) -> Any:
    creds = sa_credentials(fake, subject, (DIRECTORY_SCOPE,))
    authed = google_auth_httplib2.AuthorizedHttp(creds, http=plain_http(fake))
    return build(
        "admin",
        "directory_v1",
        http=authed,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": fake.directory_endpoint},
    )


def one_off(event_id: str, day: int = 5, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "summary": f"Ann / Bob {event_id}",
        "start": {"dateTime": f"2026-10-{day:02d}T10:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"2026-10-{day:02d}T10:30:00+02:00", "timeZone": "Europe/Berlin"},
        "organizer": {"email": ANN, "self": True},
        "attendees": [{"email": ANN, "self": True, "responseStatus": "accepted"}, {"email": BOB}],
        **extra,
    }


def series(event_id: str = "m1", rule: str = "RRULE:FREQ=WEEKLY;COUNT=4") -> dict[str, Any]:
    return one_off(event_id, day=6, recurrence=[rule])


def exception_of(master_id: str, event_id: str, original: str, **extra: Any) -> dict[str, Any]:
    return one_off(
        event_id,
        day=14,
        recurringEventId=master_id,
        originalStartTime={"dateTime": original, "timeZone": "Europe/Berlin"},
        **extra,
    )


def list_pages(service: Any, calendar_id: str = ANN, **params: Any) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    page_token: str | None = None
    while True:
        extra = {"pageToken": page_token} if page_token else {}
        page = service.events().list(calendarId=calendar_id, **params, **extra).execute()
        pages.append(page)
        page_token = page.get("nextPageToken")
        if not page_token:
            return pages


def ids(pages: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for page in pages for item in page.get("items", [])]


def reason_of(error: HttpError) -> str:
    return str(json.loads(error.content)["error"]["errors"][0]["reason"])


# --------------------------------------------------------------------------- wiring


def test_the_clients_request_the_documented_paths(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("e1"))
    fake.directory_admins.add(ADMIN)
    fake.add_user(ANN, "Ann Lee")

    assert fake.base_url.startswith("https://127.0.0.1:")
    calendar_service(fake).events().list(calendarId=ANN).execute()
    directory_service(fake).users().list(customer="my_customer").execute()

    assert [(r.method, r.path, r.subject, r.status) for r in fake.requests] == [
        ("POST", "/token", ANN, 200),
        ("GET", f"/calendar/v3/calendars/{ANN}/events", ANN, 200),
        ("POST", "/token", ADMIN, 200),
        ("GET", "/admin/directory/v1/users", ADMIN, 200),
    ]
    assert fake.requests[1].query["alt"] == "json"
    assert fake.count("GET", "/calendar/v3/") == 1
    fake.reset_log()
    assert fake.requests == []


# --------------------------------------------------------------------------- auth


def test_service_account_token_needs_domain_wide_delegation(fake: FakeGoogle) -> None:
    service = calendar_service(fake)
    assert service.events().list(calendarId="primary").execute()["summary"] == ANN

    fake.revoke_delegation(ANN)
    with pytest.raises(RefreshError, match="unauthorized_client"):
        calendar_service(fake).events().list(calendarId="primary").execute()
    assert fake.requests[-1].status == 401

    fake.grant_delegation(ANN)
    assert calendar_service(fake).events().list(calendarId="primary").execute()["items"] == []


def test_token_endpoint_checks_the_jwt_signature(fake: FakeGoogle) -> None:
    info = fake.service_account_info()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        refresh(fake, from_info(info).with_subject(ANN))

    ghost = {**fake.service_account_info(), "client_email": "ghost@proj.iam.gserviceaccount.com"}
    with pytest.raises(RefreshError, match="invalid_grant"):
        refresh(fake, from_info(ghost))


def test_the_service_account_itself_sees_no_user_calendar(fake: FakeGoogle) -> None:
    service = calendar_service(fake, sa_credentials(fake, subject=None))
    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId=ANN).execute()
    assert caught.value.resp.status == 404
    assert fake.requests[-1].subject == "calsync@proj.iam.gserviceaccount.com"


def test_api_calls_need_a_known_bearer_token(fake: FakeGoogle) -> None:
    response, content = plain_http(fake).request(f"{fake.calendar_endpoint}calendars/primary/events")
    assert response.status == 401
    assert json.loads(content)["error"]["errors"][0]["reason"] == "authError"
    assert "invalid_token" in response["www-authenticate"]

    service = calendar_service(fake)
    service.events().list(calendarId=ANN).execute()
    fake.expire_access_tokens()
    service.events().list(calendarId=ANN).execute()  # AuthorizedHttp refreshes on the 401 and retries
    assert fake.count("POST", "/token") == 2
    assert [r.status for r in fake.requests if r.method == "GET"] == [401, 200, 401, 200]


def test_users_only_read_their_own_calendar_and_scopes_are_enforced(fake: FakeGoogle) -> None:
    with pytest.raises(HttpError) as caught:
        calendar_service(fake).events().list(calendarId=BOB).execute()
    assert caught.value.resp.status == 404
    assert reason_of(caught.value) == "notFound"

    fake.put_event(ANN, one_off("e1"))
    readonly = calendar_service(fake, sa_credentials(fake, scopes=(READONLY_SCOPE,)))
    assert readonly.events().get(calendarId=ANN, eventId="e1").execute()["id"] == "e1"
    with pytest.raises(HttpError) as caught:
        readonly.events().patch(calendarId=ANN, eventId="e1", body={"summary": "x"}).execute()
    assert caught.value.resp.status == 403
    assert reason_of(caught.value) == "insufficientPermissions"


def test_refresh_token_grant_and_revocation(fake: FakeGoogle) -> None:
    fake.add_oauth_client("cid.apps.googleusercontent.com", "s3cret", "1//rt-ann", ANN)
    fake.put_event(ANN, one_off("e1"))

    def user_creds(secret: str = "s3cret") -> Any:
        return user_credentials.Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token="1//rt-ann",
            client_id="cid.apps.googleusercontent.com",
            client_secret=secret,
            token_uri=fake.token_uri,
        )

    creds = user_creds()
    refresh(fake, creds)
    assert creds.token and creds.valid
    assert ids(list_pages(calendar_service(fake, creds), "primary")) == ["e1"]
    assert fake.requests[-1].subject == ANN

    with pytest.raises(RefreshError, match="invalid_client"):
        refresh(fake, user_creds("wrong"))

    fake.revoke_refresh_token("1//rt-ann")
    with pytest.raises(RefreshError, match="invalid_grant") as caught:
        refresh(fake, user_creds())
    assert "Token has been expired or revoked." in str(caught.value)


# --------------------------------------------------------------------------- full and incremental sync


def test_full_sync_pages_through_empty_pages_and_ends_with_a_sync_token(fake: FakeGoogle) -> None:
    for n in range(7):
        fake.put_event(ANN, one_off(f"e{n}", day=n + 1))
    fake.empty_pages = 2

    pages = list_pages(calendar_service(fake), maxResults=3, showDeleted=True)

    assert [len(p["items"]) for p in pages] == [0, 0, 3, 3, 1]
    assert ids(pages) == [f"e{n}" for n in range(7)]
    assert all("nextPageToken" in p and "nextSyncToken" not in p for p in pages[:-1])
    assert "nextPageToken" not in pages[-1] and pages[-1]["nextSyncToken"]
    first = pages[0]
    assert first["kind"] == "calendar#events"
    assert first["timeZone"] == "Europe/Berlin"
    assert first["accessRole"] == "owner"
    item = pages[2]["items"][0]
    assert item["kind"] == "calendar#event"
    assert item["status"] == "confirmed"
    assert item["iCalUID"] == "e0@google.com"
    assert item["sequence"] == 0
    assert item["etag"].startswith('"') and item["etag"].strip('"').isdigit()
    assert item["updated"].endswith("Z") and len(item["updated"]) == len("2026-10-01T08:00:00.000Z")


def test_page_size_cap_and_tombstones_only_with_show_deleted(fake: FakeGoogle) -> None:
    for n in range(5):
        fake.put_event(ANN, one_off(f"e{n}", day=n + 1))
    fake.delete_event(ANN, "e1")
    fake.page_size_cap = 2
    service = calendar_service(fake)

    without = list_pages(service)
    assert [len(p["items"]) for p in without] == [2, 2]
    assert ids(without) == ["e0", "e2", "e3", "e4"]

    with_deleted = list_pages(service, showDeleted=True, maxResults=2500)
    assert ids(with_deleted) == ["e0", "e1", "e2", "e3", "e4"]
    assert with_deleted[0]["items"][1] == {
        "kind": "calendar#event",
        "etag": with_deleted[0]["items"][1]["etag"],
        "id": "e1",
        "status": "cancelled",
    }


def test_a_page_token_belongs_to_its_snapshot_and_can_be_replayed(fake: FakeGoogle) -> None:
    for n in range(4):
        fake.put_event(ANN, one_off(f"e{n}", day=n + 1))
    events = calendar_service(fake).events()
    first = events.list(calendarId=ANN, maxResults=2).execute()
    fake.put_event(ANN, one_off("late", day=20))
    fake.patch_event(ANN, "e3", {"summary": "renamed"})

    again = events.list(calendarId=ANN, maxResults=2, pageToken=first["nextPageToken"]).execute()
    replay = events.list(calendarId=ANN, maxResults=2, pageToken=first["nextPageToken"]).execute()
    assert [i["id"] for i in again["items"]] == ["e2", "e3"] == [i["id"] for i in replay["items"]]
    assert again["items"][1]["summary"] == "Ann / Bob e3"  # the snapshot, not the later change
    assert again["nextSyncToken"] == replay["nextSyncToken"]

    changes = events.list(calendarId=ANN, syncToken=again["nextSyncToken"]).execute()
    assert [i["id"] for i in changes["items"]] == ["e3", "late"]


def test_incremental_sync_returns_only_changes_including_tombstones(fake: FakeGoogle) -> None:
    for n in range(3):
        fake.put_event(ANN, one_off(f"e{n}", day=n + 1))
    service = calendar_service(fake)
    sync_token = list_pages(service, showDeleted=True)[-1]["nextSyncToken"]

    fake.patch_event(ANN, "e0", {"summary": "moved"})
    fake.delete_event(ANN, "e2")
    fake.put_event(ANN, one_off("new", day=9))

    pages = list_pages(service, syncToken=sync_token, showDeleted=True)
    items = [i for p in pages for i in p["items"]]
    assert [i["id"] for i in items] == ["e0", "e2", "new"]
    assert items[0]["summary"] == "moved"
    assert set(items[1]) == {"kind", "etag", "id", "status"} and items[1]["status"] == "cancelled"

    quiet = list_pages(service, syncToken=pages[-1]["nextSyncToken"], showDeleted=True)
    assert ids(quiet) == []
    assert quiet[-1]["nextSyncToken"]


def test_a_fields_selection_keeps_only_what_it_names_in_full_and_incremental_listings(
    fake: FakeGoogle,
) -> None:
    fake.put_event(ANN, one_off("e1"))
    fake.put_event(ANN, one_off("e2", day=2))
    service = calendar_service(fake)
    spec = "nextPageToken,nextSyncToken,items(id,summary,organizer/email,attendees(email,responseStatus))"
    pages = list_pages(service, showDeleted=True, maxResults=1, fields=spec)
    assert [set(page) for page in pages] == [{"items", "nextPageToken"}, {"items", "nextSyncToken"}]
    people = {
        "organizer": {"email": ANN},
        "attendees": [{"email": ANN, "responseStatus": "accepted"}, {"email": BOB}],
    }
    assert pages[0]["items"] == [{"id": "e1", "summary": "Ann / Bob e1", **people}]
    whole = list_pages(service, showDeleted=True)[0]["items"][0]  # the same event, every field
    assert {"kind", "etag", "htmlLink", "start", "end", "iCalUID"} <= set(whole)

    fake.patch_event(ANN, "e2", {"summary": "moved"})
    fake.delete_event(ANN, "e1")
    changes = list_pages(service, syncToken=pages[-1]["nextSyncToken"], showDeleted=True, fields=spec)
    assert [i for p in changes for i in p["items"]] == [
        {"id": "e1"},  # the tombstone: of its fields only the id was asked for
        {"id": "e2", "summary": "moved", **people},
    ]
    for bad in ("items(id,colour)", "itemz", "items(id"):
        with pytest.raises(HttpError) as caught:
            service.events().list(calendarId=ANN, fields=bad).execute()
        assert caught.value.resp.status == 400 and reason_of(caught.value) == "invalidParameter", bad


def test_cancelled_instances_and_series_deletion(fake: FakeGoogle) -> None:
    fake.put_event(ANN, series("m1"))
    fake.put_event(ANN, exception_of("m1", "m1_20261013T080000Z", "2026-10-13T10:00:00+02:00"))
    fake.put_event(ANN, exception_of("m1", "m1_20261020T080000Z", "2026-10-20T10:00:00+02:00"))
    fake.delete_event(ANN, "m1_20261013T080000Z")
    service = calendar_service(fake)

    # documented: cancelled instances are listed even without showDeleted when singleEvents is false
    pages = list_pages(service)
    assert ids(pages) == ["m1", "m1_20261013T080000Z", "m1_20261020T080000Z"]
    tombstone = pages[0]["items"][1]
    assert set(tombstone) == {"kind", "etag", "id", "status", "recurringEventId", "originalStartTime"}
    assert tombstone["recurringEventId"] == "m1"
    assert tombstone["originalStartTime"]["dateTime"] == "2026-10-13T10:00:00+02:00"

    sync_token = pages[-1]["nextSyncToken"]
    fake.delete_event(ANN, "m1")
    changes = [i for p in list_pages(service, syncToken=sync_token) for i in p["items"]]
    assert [(i["id"], i["status"]) for i in changes] == [
        ("m1", "cancelled"),
        ("m1_20261020T080000Z", "cancelled"),
    ]
    got = service.events().get(calendarId=ANN, eventId="m1").execute()
    assert got["status"] == "cancelled"


def test_expired_or_unknown_sync_token_requires_a_full_sync(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("e1"))
    service = calendar_service(fake)
    sync_token = list_pages(service)[-1]["nextSyncToken"]
    fake.expire_sync_tokens(ANN)

    for token in (sync_token, "CPnot-a-token"):
        with pytest.raises(HttpError) as caught:
            service.events().list(calendarId=ANN, syncToken=token).execute()
        assert caught.value.resp.status == 410
        assert json.loads(caught.value.content) == {
            "error": {
                "errors": [
                    {
                        "domain": "global",
                        "reason": "fullSyncRequired",
                        "message": "Sync token is no longer valid, a full sync is required.",
                    }
                ],
                "code": 410,
                "message": "Sync token is no longer valid, a full sync is required.",
            }
        }
    fresh = list_pages(service)[-1]["nextSyncToken"]
    assert service.events().list(calendarId=ANN, syncToken=fresh).execute()["items"] == []


def test_list_parameter_validation(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("e1"))
    events = calendar_service(fake).events()
    sync_token = events.list(calendarId=ANN).execute()["nextSyncToken"]
    bad_calls = [
        {"syncToken": sync_token, "timeMin": "2026-01-01T00:00:00Z"},
        {"syncToken": sync_token, "q": "Bob"},
        {"singleEvents": True},
        {"timeMin": "2026-01-01T00:00:00"},  # Google wants an offset
        {"orderBy": "startTime"},
    ]
    for params in bad_calls:
        with pytest.raises(HttpError) as caught:
            events.list(calendarId=ANN, **params).execute()
        assert caught.value.resp.status == 400, params
    assert events.list(calendarId=ANN, maxResults=5000).execute()["items"][0]["id"] == "e1"


def test_time_window_and_text_filters_on_full_sync(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("early", day=1))
    fake.put_event(ANN, one_off("late", day=28))
    fake.put_event(ANN, series("weekly", "RRULE:FREQ=WEEKLY;UNTIL=20261020T000000Z"))
    fake.put_event(ANN, series("forever", "RRULE:FREQ=WEEKLY"))
    events = calendar_service(fake).events()

    window = events.list(
        calendarId=ANN, timeMin="2026-10-21T00:00:00+02:00", timeMax="2026-12-01T00:00:00Z"
    ).execute()
    assert [i["id"] for i in window["items"]] == ["late", "forever"]
    found = events.list(calendarId=ANN, q="LATE bob").execute()["items"]
    assert [i["id"] for i in found] == ["late"]
    assert events.list(calendarId=ANN, q="nobody").execute()["items"] == []


# --------------------------------------------------------------------------- faults


def test_429_with_retry_after_surfaces_to_the_caller(fake: FakeGoogle) -> None:
    service = calendar_service(fake)
    service.events().list(calendarId=ANN).execute()  # the token is fetched before the fault is armed
    fake.fail_next(1, 429, retry_after=1)

    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId=ANN).execute(num_retries=0)
    assert caught.value.resp.status == 429
    assert caught.value.resp["retry-after"] == "1"
    error = json.loads(caught.value.content)["error"]
    assert error["code"] == 429
    assert error["errors"][0] == {
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
        "message": "Rate Limit Exceeded",
    }
    assert service.events().list(calendarId=ANN).execute()["kind"] == "calendar#events"
    assert [r.status for r in fake.requests if r.method == "GET"] == [200, 429, 200]


def test_error_envelopes_for_quota_and_backend_errors(fake: FakeGoogle) -> None:
    service = calendar_service(fake)
    service.events().list(calendarId=ANN).execute()
    fake.fail_next(1, 403, reason="userRateLimitExceeded")
    fake.fail_next(1, 503)
    fake.fail_next(1, 500)
    seen = []
    for _ in range(3):
        with pytest.raises(HttpError) as caught:
            service.events().list(calendarId=ANN).execute()
        body = json.loads(caught.value.content)["error"]
        seen.append((caught.value.resp.status, body["errors"][0]["domain"], reason_of(caught.value)))
    assert seen == [
        (403, "usageLimits", "userRateLimitExceeded"),
        (503, "global", "backendError"),
        (500, "global", "backendError"),
    ]


def test_faults_only_hit_requests_matching_their_filter(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("e1"))
    service = calendar_service(fake)
    fake.fail_next(1, 404, path_contains="/events/e1")
    fake.fail_next(1, 400, reason="invalid_grant", path_contains="/token")

    with pytest.raises(RefreshError, match="invalid_grant"):
        service.events().list(calendarId=ANN).execute()
    assert service.events().list(calendarId=ANN).execute()["items"][0]["id"] == "e1"
    with pytest.raises(HttpError) as caught:
        service.events().get(calendarId=ANN, eventId="e1").execute()
    assert caught.value.resp.status == 404
    assert service.events().get(calendarId=ANN, eventId="e1").execute()["id"] == "e1"


def test_dropped_connections(fake: FakeGoogle) -> None:
    service = calendar_service(fake)
    service.events().list(calendarId=ANN).execute()

    fake.drop_next(1)  # httplib2 retries a request once by itself when the connection dies
    service.events().list(calendarId=ANN).execute()
    assert [r.status for r in fake.requests if r.method == "GET"] == [200, 0, 200]

    fake.drop_next(2)
    with pytest.raises((http.client.HTTPException, OSError)):
        service.events().list(calendarId=ANN).execute()
    assert service.events().list(calendarId=ANN).execute()["kind"] == "calendar#events"


def test_slow_answers_time_out_on_the_client(fake: FakeGoogle) -> None:
    service = calendar_service(fake, timeout=0.2)
    service.events().list(calendarId=ANN).execute()
    fake.slow_next(1, 1.0)
    with pytest.raises(TimeoutError):
        service.events().list(calendarId=ANN).execute()
    assert service.events().list(calendarId=ANN).execute()["kind"] == "calendar#events"


# --------------------------------------------------------------------------- writes


def test_patch_honours_if_match(fake: FakeGoogle) -> None:
    stored = fake.put_event(ANN, one_off("e1", sequence=3))
    events = calendar_service(fake).events()

    stale = events.patch(calendarId=ANN, eventId="e1", body={"summary": "x"}, sendUpdates="none")
    stale.headers["If-Match"] = '"123"'
    with pytest.raises(HttpError) as caught:
        stale.execute()
    assert caught.value.resp.status == 412
    assert json.loads(caught.value.content)["error"]["errors"][0] == {
        "domain": "global",
        "reason": "conditionNotMet",
        "message": "Precondition Failed",
        "locationType": "header",
        "location": "If-Match",
    }

    fresh = events.patch(calendarId=ANN, eventId="e1", body={"summary": "agenda"}, sendUpdates="none")
    fresh.headers["If-Match"] = stored["etag"]
    patched = fresh.execute()
    assert patched["summary"] == "agenda"
    assert patched["etag"] != stored["etag"]
    assert patched["sequence"] == 3
    assert patched["updated"] > stored["updated"]
    assert patched["attendees"] == stored["attendees"]
    assert fake.events(ANN)[0]["summary"] == "agenda"
    assert fake.requests[-1].query["sendUpdates"] == "none"
    assert fake.requests[-1].body == {"summary": "agenda"}


def test_patch_merges_extended_properties_and_replaces_arrays(fake: FakeGoogle) -> None:
    fake.put_event(
        ANN, one_off("e1", extendedProperties={"private": {"a": "1", "b": "2"}, "shared": {"s": "x"}})
    )
    events = calendar_service(fake).events()

    body = {
        "extendedProperties": {"private": {"b": None, "calsync": "v1"}},
        "attendees": [{"email": ANN}],
    }
    patched = events.patch(calendarId=ANN, eventId="e1", body=body).execute()
    assert patched["extendedProperties"] == {"private": {"a": "1", "calsync": "v1"}, "shared": {"s": "x"}}
    assert patched["attendees"] == [{"email": ANN}]

    changes = events.list(calendarId=ANN, privateExtendedProperty="calsync=v1").execute()["items"]
    assert [i["id"] for i in changes] == ["e1"]


def test_patch_attachments(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("e1"))
    events = calendar_service(fake).events()
    attachment = {"fileUrl": "https://drive.google.com/open?id=doc1", "title": "Agenda"}

    ignored = events.patch(calendarId=ANN, eventId="e1", body={"attachments": [attachment]}).execute()
    assert "attachments" not in ignored  # without supportsAttachments Google drops them

    kept = events.patch(
        calendarId=ANN, eventId="e1", body={"attachments": [attachment]}, supportsAttachments=True
    ).execute()
    assert kept["attachments"] == [attachment]

    too_many = [{**attachment, "title": f"doc {n}"} for n in range(26)]
    with pytest.raises(HttpError) as caught:
        events.patch(
            calendarId=ANN, eventId="e1", body={"attachments": too_many}, supportsAttachments=True
        ).execute()
    assert caught.value.resp.status == 400

    with pytest.raises(HttpError) as caught:
        events.patch(calendarId=ANN, eventId="nope", body={"summary": "x"}).execute()
    assert caught.value.resp.status == 404


# --------------------------------------------------------------------------- recurring events: instances


def test_instances_expand_the_series_in_its_zone_and_replace_exceptions(fake: FakeGoogle) -> None:
    fake.put_event(ANN, series("m1"))  # Tuesdays 10:00 Berlin from 2026-10-06; summer time ends on 10-25
    fake.put_event(
        ANN, exception_of("m1", "m1_20261013T080000Z", "2026-10-13T10:00:00+02:00", summary="moved")
    )
    events = calendar_service(fake).events()

    page = events.instances(calendarId=ANN, eventId="m1").execute()
    items = page["items"]
    assert [i["id"] for i in items] == [
        "m1_20261006T080000Z",
        "m1_20261013T080000Z",
        "m1_20261020T080000Z",
        "m1_20261027T090000Z",
    ]
    assert fake.requests[-1].path == f"/calendar/v3/calendars/{ANN}/events/m1/instances"
    assert page["kind"] == "calendar#events" and "nextSyncToken" not in page
    last = items[3]
    assert last["start"] == {"dateTime": "2026-10-27T10:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert last["end"] == {"dateTime": "2026-10-27T10:30:00+01:00", "timeZone": "Europe/Berlin"}
    assert last["originalStartTime"] == last["start"]
    assert last["recurringEventId"] == "m1" and "recurrence" not in last
    assert last["iCalUID"] == "m1@google.com" and last["etag"] != items[2]["etag"]
    assert items[1]["summary"] == "moved" and items[1]["start"]["dateTime"] == "2026-10-14T10:00:00+02:00"

    one = events.instances(calendarId=ANN, eventId="m1", originalStart="2026-10-27T09:00:00Z").execute()
    assert one["items"] == [last]
    assert events.get(calendarId=ANN, eventId="m1_20261027T090000Z").execute() == last
    window = events.instances(
        calendarId=ANN, eventId="m1", timeMin="2026-10-19T00:00:00Z", timeMax="2026-10-26T00:00:00Z"
    ).execute()
    assert [i["id"] for i in window["items"]] == ["m1_20261020T080000Z"]
    paged = list_pages_of_instances(events, "m1", maxResults=3)
    assert [len(p["items"]) for p in paged] == [3, 1]

    with pytest.raises(HttpError) as caught:  # no instance starts then
        events.get(calendarId=ANN, eventId="m1_20261014T080000Z").execute()
    assert caught.value.resp.status == 404

    fake.delete_event(ANN, "m1_20261013T080000Z")
    assert len(events.instances(calendarId=ANN, eventId="m1").execute()["items"]) == 3
    shown = events.instances(calendarId=ANN, eventId="m1", showDeleted=True).execute()["items"]
    assert [i["status"] for i in shown] == ["confirmed", "cancelled", "confirmed", "confirmed"]


def list_pages_of_instances(events: Any, event_id: str, **params: Any) -> list[dict[str, Any]]:
    pages = []
    request = events.instances(calendarId=ANN, eventId=event_id, **params)
    while request is not None:
        page = request.execute()
        pages.append(page)
        request = events.instances_next(request, page)
    return pages


def test_instances_honour_exdate_rdate_until_and_all_day_series(fake: FakeGoogle) -> None:
    fake.put_event(
        ANN,
        one_off(
            "m2",
            day=6,
            recurrence=[
                "RRULE:FREQ=WEEKLY;UNTIL=20261103T225959Z",
                "EXDATE;TZID=Europe/Berlin:20261013T100000",
                "RDATE;TZID=Europe/Berlin:20261015T100000",
            ],
        ),
    )
    fake.put_event(
        ANN,
        {
            "id": "day",
            "summary": "Offsite",
            "start": {"date": "2026-10-05"},
            "end": {"date": "2026-10-06"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"],
        },
    )
    events = calendar_service(fake).events()

    ids = [i["id"] for i in events.instances(calendarId=ANN, eventId="m2").execute()["items"]]
    assert ids == [
        "m2_20261006T080000Z",
        "m2_20261015T080000Z",
        "m2_20261020T080000Z",
        "m2_20261027T090000Z",
        "m2_20261103T090000Z",
    ]
    days = events.instances(calendarId=ANN, eventId="day").execute()["items"]
    assert [(i["id"], i["start"], i["end"]) for i in days] == [
        ("day_20261005", {"date": "2026-10-05"}, {"date": "2026-10-06"}),
        ("day_20261006", {"date": "2026-10-06"}, {"date": "2026-10-07"}),
        ("day_20261007", {"date": "2026-10-07"}, {"date": "2026-10-08"}),
    ]
    assert days[1]["originalStartTime"] == {"date": "2026-10-06"}


def test_patching_a_virtual_instance_makes_an_exception(fake: FakeGoogle) -> None:
    fake.put_event(ANN, series("m1"))
    events = calendar_service(fake).events()
    sync_token = list_pages(calendar_service(fake))[-1]["nextSyncToken"]
    [instance] = events.instances(
        calendarId=ANN, eventId="m1", originalStart="2026-10-20T10:00:00+02:00"
    ).execute()["items"]
    assert instance["id"] == "m1_20261020T080000Z"
    assert [e["id"] for e in fake.events(ANN)] == ["m1"]  # virtual: nothing stored

    stale = events.patch(calendarId=ANN, eventId=instance["id"], body={"description": "x"})
    stale.headers["If-Match"] = '"1"'
    with pytest.raises(HttpError) as caught:
        stale.execute()
    assert caught.value.resp.status == 412 and reason_of(caught.value) == "conditionNotMet"

    body = {"description": "Agenda: see attachment", "extendedProperties": {"private": {"calsync": "1"}}}
    fresh = events.patch(calendarId=ANN, eventId=instance["id"], body=body, sendUpdates="none")
    fresh.headers["If-Match"] = instance["etag"]
    patched = fresh.execute()
    assert patched["id"] == instance["id"]
    assert patched["recurringEventId"] == "m1"
    assert patched["originalStartTime"] == instance["originalStartTime"]
    assert patched["start"] == instance["start"] and patched["summary"] == instance["summary"]
    assert patched["description"] == "Agenda: see attachment"
    assert patched["iCalUID"] == "m1@google.com" and patched["etag"] != instance["etag"]
    assert fake.requests[-1].query["sendUpdates"] == "none"

    assert ids(list_pages(calendar_service(fake))) == ["m1", instance["id"]]
    changes = list_pages(calendar_service(fake), syncToken=sync_token)
    assert ids(changes) == [instance["id"]]
    found = events.list(calendarId=ANN, privateExtendedProperty="calsync=1").execute()["items"]
    assert [i["id"] for i in found] == [instance["id"]]
    again = events.instances(calendarId=ANN, eventId="m1").execute()["items"]
    assert again[2] == patched

    outdated = events.patch(calendarId=ANN, eventId=instance["id"], body={"description": "y"})
    outdated.headers["If-Match"] = instance["etag"]  # the virtual instance's etag is gone
    with pytest.raises(HttpError) as caught:
        outdated.execute()
    assert caught.value.resp.status == 412


def test_attachments_naming_a_drive_file_are_filled_in(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("e1"))
    doc = fake.put_file(ANN, "1:1 Ann / Bob agenda", "<p>Topics</p>")
    hidden = fake.put_file(BOB, "Bob's private notes", "<p>x</p>")
    events = calendar_service(fake).events()
    icon = "https://drive-thirdparty.googleusercontent.com/16/type/application/vnd.google-apps.document"

    attachments = [
        {"fileUrl": doc["webViewLink"]},
        {"fileUrl": f"https://drive.google.com/open?id={doc['id']}", "title": "renamed"},
        {"fileUrl": hidden["webViewLink"], "title": "not Ann's"},
    ]
    patched = events.patch(
        calendarId=ANN, eventId="e1", body={"attachments": attachments}, supportsAttachments=True
    ).execute()
    filled = {
        "fileId": doc["id"],
        "title": "1:1 Ann / Bob agenda",
        "mimeType": "application/vnd.google-apps.document",
        "iconLink": icon,
    }
    assert patched["attachments"] == [
        {"fileUrl": doc["webViewLink"], **filled},
        {"fileUrl": f"https://drive.google.com/open?id={doc['id']}", **filled},
        {"fileUrl": hidden["webViewLink"], "title": "not Ann's"},  # a file Ann cannot see stays as given
    ]

    with pytest.raises(HttpError) as caught:
        events.patch(
            calendarId=ANN,
            eventId="e1",
            body={"attachments": [{"title": "no url"}]},
            supportsAttachments=True,
        ).execute()
    assert caught.value.resp.status == 400


# --------------------------------------------------------------------------- directory


def test_directory_users_list_pages_and_relations(fake: FakeGoogle) -> None:
    fake.directory_admins.add(ADMIN)
    fake.add_user("boss@acme.test", "Bea Boss")
    fake.add_user(ANN, "Ann Lee", manager="boss@acme.test")
    fake.add_user(BOB, "Bob Van Dyke", manager=ANN)
    fake.add_user("gone@acme.test", "Gone Person", suspended=True)
    fake.add_user("x@other.test", "Other Domain")
    users = directory_service(fake).users()

    pages = []
    request = users.list(customer="my_customer", maxResults=2, projection="full")
    while request is not None:
        page = request.execute()
        pages.append(page)
        request = users.list_next(request, page)
    assert [len(p["users"]) for p in pages] == [2, 2, 1]
    everyone = {u["primaryEmail"]: u for p in pages for u in p["users"]}
    assert everyone[BOB]["name"] == {"givenName": "Bob", "familyName": "Van Dyke", "fullName": "Bob Van Dyke"}
    assert everyone[BOB]["relations"] == [{"value": ANN, "type": "manager"}]
    assert "relations" not in everyone["boss@acme.test"]
    assert everyone["gone@acme.test"]["suspended"] is True
    assert everyone[ANN]["kind"] == "admin#directory#user"

    by_domain = users.list(domain="other.test").execute()
    assert [u["primaryEmail"] for u in by_domain["users"]] == ["x@other.test"]
    assert "nextPageToken" not in by_domain


def test_directory_needs_an_admin_subject(fake: FakeGoogle) -> None:
    fake.add_user(ANN, "Ann Lee")
    with pytest.raises(HttpError) as caught:
        directory_service(fake, subject=ANN).users().list(customer="my_customer").execute()
    assert caught.value.resp.status == 403
    error = json.loads(caught.value.content)["error"]
    assert error["errors"][0]["reason"] == "forbidden"
    assert error["message"] == "Not Authorized to access this resource/api"


# --------------------------------------------------------------------------- concurrency


def test_parallel_clients(fake: FakeGoogle) -> None:
    for n in range(20):
        fake.put_event(ANN, one_off(f"e{n:02d}", day=n + 1))
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(ids(list_pages(calendar_service(fake), maxResults=7)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert results == [[f"e{n:02d}" for n in range(20)]] * 6


# --------------------------------------------------------------------------- event types


def ooo(event_id: str, day: int = 7, **extra: Any) -> dict[str, Any]:
    """An out-of-office block of Ann's (timed, as the API requires)."""
    return {
        "id": event_id,
        "eventType": "outOfOffice",
        "summary": "Out of office",
        "start": {"dateTime": f"2026-10-{day:02d}T00:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"2026-10-{day + 1:02d}T00:00:00+02:00", "timeZone": "Europe/Berlin"},
        "organizer": {"email": ANN, "self": True},
        "outOfOfficeProperties": {"autoDeclineMode": "declineNone"},
        **extra,
    }


def test_every_event_has_a_type_and_listings_filter_by_event_types(fake: FakeGoogle) -> None:
    fake.put_event(ANN, one_off("meeting"))
    fake.put_event(ANN, ooo("away"))
    fake.put_event(ANN, ooo("weekly", day=9, recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"]))
    exception = {
        **ooo("weekly_20261015T220000Z", day=16),
        "recurringEventId": "weekly",
        "originalStartTime": {"dateTime": "2026-10-16T00:00:00+02:00", "timeZone": "Europe/Berlin"},
    }
    del exception["eventType"]  # an exception is of its series' type
    fake.put_event(ANN, exception)
    focus = {**one_off("focus", day=8), "eventType": "focusTime", "attendees": []}
    fake.put_event(ANN, focus)
    service = calendar_service(fake, sa_credentials(fake, ANN, (READONLY_SCOPE,)))

    everything = [i for p in list_pages(service, showDeleted=True) for i in p["items"]]
    assert {i["id"]: i["eventType"] for i in everything} == {
        "meeting": "default",
        "away": "outOfOffice",
        "weekly": "outOfOffice",
        "weekly_20261015T220000Z": "outOfOffice",
        "focus": "focusTime",
    }
    weekly = next(i for i in everything if i["id"] == "weekly_20261015T220000Z")
    assert weekly["iCalUID"] == "weekly@google.com"  # an exception shares its series' iCalUID
    assert everything[1]["outOfOfficeProperties"] == {"autoDeclineMode": "declineNone"}

    # the discovery document takes eventTypes (repeated), and the fake filters by it
    pages = list_pages(service, showDeleted=True, eventTypes=["outOfOffice"])
    assert ids(pages) == ["away", "weekly", "weekly_20261015T220000Z"]
    both = list_pages(service, eventTypes=["outOfOffice", "focusTime"])
    assert ids(both) == ["away", "weekly", "weekly_20261015T220000Z", "focus"]
    with pytest.raises(TypeError):  # the client checks the values against the discovery document
        service.events().list(calendarId=ANN, eventTypes=["holiday"]).execute()

    # incremental: only changes of the token's types, deletions included
    token = pages[-1]["nextSyncToken"]
    fake.patch_event(ANN, "meeting", {"summary": "moved"})
    fake.delete_event(ANN, "away")
    fake.put_event(ANN, ooo("sick", day=20))
    changes = [
        i for p in list_pages(service, syncToken=token, eventTypes=["outOfOffice"]) for i in p["items"]
    ]
    assert [(i["id"], i["status"]) for i in changes] == [("away", "cancelled"), ("sick", "confirmed")]
    assert set(changes[0]) == {"kind", "etag", "id", "status"}  # a tombstone stays stripped

    # other types than the token's: Google leaves it undefined, the fake refuses it
    for other in ({}, {"eventTypes": ["default"]}, {"eventTypes": ["outOfOffice", "focusTime"]}):
        with pytest.raises(HttpError) as caught:
            service.events().list(calendarId=ANN, syncToken=token, **other).execute()
        assert caught.value.resp.status == 400 and reason_of(caught.value) == "invalid", other
        assert (
            "initial synchronization" in json.loads(caught.value.content)["error"]["errors"][0]["fakeDetail"]
        )
    full = list_pages(service)[-1]["nextSyncToken"]
    with pytest.raises(HttpError):
        service.events().list(calendarId=ANN, syncToken=full, eventTypes=["outOfOffice"]).execute()


def test_out_of_office_events_are_timed_opaque_and_keep_their_type(fake: FakeGoogle) -> None:
    all_day = {**ooo("d"), "start": {"date": "2026-10-07"}, "end": {"date": "2026-10-08"}}
    with pytest.raises(ValueError, match="cannot be all-day"):
        fake.put_event(ANN, all_day)
    with pytest.raises(ValueError, match="outOfOfficeProperties"):
        fake.put_event(ANN, {k: v for k, v in ooo("p").items() if k != "outOfOfficeProperties"})
    with pytest.raises(ValueError, match="opaque"):
        fake.put_event(ANN, ooo("t", transparency="transparent"))
    with pytest.raises(ValueError, match="Invalid event type"):
        fake.put_event(ANN, {**one_off("x"), "eventType": "vacation"})
    fake.put_event(ANN, ooo("away", outOfOfficeProperties={}))  # empty properties will do
    with pytest.raises(ValueError, match="cannot be changed"):
        fake.put_event(ANN, {**one_off("away")})
    fake.put_event(ANN, one_off("meeting"))

    service = calendar_service(fake)
    for event_id, patch in (
        ("away", {"start": {"date": "2026-10-07"}, "end": {"date": "2026-10-08"}}),
        ("away", {"eventType": "default"}),
        ("meeting", {"eventType": "outOfOffice", "outOfOfficeProperties": {}}),
    ):
        with pytest.raises(HttpError) as caught:
            service.events().patch(calendarId=ANN, eventId=event_id, body=patch).execute()
        assert caught.value.resp.status == 400 and reason_of(caught.value) == "invalid", patch
    moved = (
        service.events()
        .patch(
            calendarId=ANN,
            eventId="away",
            body={"end": {"dateTime": "2026-10-07T12:00:00+02:00", "timeZone": "Europe/Berlin"}},
        )
        .execute()
    )
    assert moved["eventType"] == "outOfOffice" and moved["end"]["dateTime"].startswith("2026-10-07T12")
