"""OneDrive (driveItem) in the Graph fake, driven by the real msal and requests over https on 127.0.0.1."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakes.graph import FakeGraph
from tests.integration.test_graph_fake import (
    ANN,
    APP,
    BOB,
    PUBLIC,
    SECRET,
    app_token,
    error_of,
    get,
    public,
    session_for,
)

CAROL = "carol@acme.test"
AGENDA = "Agendas/1-1 Ann & Bob.md"
FAIL = {"@microsoft.graph.conflictBehavior": "fail"}


pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        server.add_user(ANN, "Ann Arbor", time_zone="Europe/Berlin")
        server.add_user(BOB, "Bob Builder", manager=ANN)
        server.add_user(CAROL, "Carol Danvers", onedrive=False)
        server.add_app(
            APP, secret=SECRET, roles=("Calendars.ReadWrite", "User.Read.All", "Files.ReadWrite.All")
        )
        yield server
        assert server.internal_errors == []


def drive_url(fake: FakeGraph, tail: str, user: str = ANN) -> str:
    return f"{fake.graph_endpoint}/users/{user}/drive/{tail}"


def path_url(fake: FakeGraph, path: str, suffix: str = ":/content", user: str = ANN) -> str:
    quoted = "/".join(urllib.parse.quote(part, safe="") for part in path.split("/"))
    return drive_url(fake, f"root:/{quoted}{suffix}", user)


def call(
    fake: FakeGraph,
    method: str,
    url: str,
    token: str,
    *,
    params: dict[str, str] | None = None,
    data: bytes | None = None,
    json: Any = None,
    redirects: bool = True,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    with session_for(fake) as session:
        return session.request(
            method,
            url,
            params=params,
            data=data,
            json=json,
            headers=sent,
            timeout=30,
            allow_redirects=redirects,
        )


def upload(
    fake: FakeGraph,
    token: str,
    path: str,
    content: bytes,
    params: dict[str, str] | None = None,
    if_match: str | None = None,
) -> requests.Response:
    headers = {"Content-Type": "text/markdown", **({"If-Match": if_match} if if_match else {})}
    return call(fake, "PUT", path_url(fake, path), token, params=params, data=content, headers=headers)


def invite(fake: FakeGraph, token: str, item_id: str, **body: Any) -> requests.Response:
    request = {
        "recipients": [{"email": BOB}],
        "roles": ["write"],
        "requireSignIn": True,
        "sendInvitation": False,
        **body,
    }
    return call(fake, "POST", drive_url(fake, f"items/{item_id}/invite"), token, json=request)


def test_upload_create_replace_fail_and_rename(fake: FakeGraph) -> None:
    token = app_token(fake)
    created = upload(fake, token, AGENDA, b"# Agenda\n", FAIL)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["name"] == "1-1 Ann & Bob.md" and item["size"] == 9
    assert item["file"] == {"mimeType": "text/markdown"}
    assert re.fullmatch(r'"\{[0-9A-F-]{36}\},1"', item["eTag"]) and item["cTag"].startswith('"c:{')
    assert item["parentReference"]["path"] == "/drive/root:/Agendas"
    assert item["parentReference"]["driveId"].startswith("b!")
    assert item["webUrl"] == (
        "https://acme-my.sharepoint.com/personal/ann_acme_test/Documents/Agendas/1-1%20Ann%20%26%20Bob.md"
    )
    assert item["createdBy"]["application"]["id"] == APP and "email" not in item["createdBy"]["user"]
    assert created.headers["ETag"] == item["eTag"]

    again = upload(fake, token, AGENDA, b"# Other\n", FAIL)
    assert error_of(again)[:2] == (409, "nameAlreadyExists")
    replaced = upload(fake, token, AGENDA.upper(), b"# Agenda v2\n")  # names are case-insensitive
    assert replaced.status_code == 200 and replaced.json()["id"] == item["id"]
    assert replaced.json()["eTag"] != item["eTag"] and replaced.json()["cTag"] != item["cTag"]
    renamed = upload(fake, token, AGENDA, b"# Copy\n", {"@microsoft.graph.conflictBehavior": "rename"})
    assert renamed.status_code == 201 and renamed.json()["name"] == "1-1 Ann & Bob 1.md"
    bad = upload(fake, token, AGENDA, b"", {"@microsoft.graph.conflictBehavior": "overwrite"})
    assert error_of(bad)[:2] == (400, "invalidRequest")

    assert [(i["path"], "folder" in i) for i in fake.drive_items(ANN)] == [
        ("Agendas", True),
        ("Agendas/1-1 Ann & Bob 1.md", False),
        ("Agendas/1-1 Ann & Bob.md", False),
    ]
    assert fake.item_content(ANN, AGENDA) == b"# Agenda v2\n"
    fetched = call(fake, "GET", path_url(fake, AGENDA, ""), token)
    assert fetched.json()["id"] == item["id"] and fetched.json()["@microsoft.graph.downloadUrl"]
    by_id = call(fake, "GET", drive_url(fake, f"items/{item['id']}"), token).json()
    assert by_id["name"] == item["name"] and by_id["eTag"] == replaced.json()["eTag"]
    assert error_of(call(fake, "GET", path_url(fake, "Agendas/missing.md", ""), token))[:2] == (
        404,
        "itemNotFound",
    )
    assert error_of(call(fake, "GET", drive_url(fake, "items/01NOPE"), token))[:2] == (404, "itemNotFound")
    assert fake.requests[-1].mailbox == ANN


def test_if_match_and_human_edits(fake: FakeGraph) -> None:
    token = app_token(fake)
    item = upload(fake, token, AGENDA, b"v1").json()
    edited = fake.human_edit_item(ANN, item["id"], b"v1 + notes from Bob", BOB)
    assert edited["lastModifiedBy"] == {
        "user": {"email": BOB, "id": edited["lastModifiedBy"]["user"]["id"], "displayName": "Bob Builder"}
    }
    assert edited["eTag"] != item["eTag"] and edited["cTag"] != item["cTag"]

    by_id = drive_url(fake, f"items/{item['id']}/content")
    stale = call(fake, "PUT", by_id, token, data=b"v2", headers={"If-Match": item["eTag"]})
    assert error_of(stale)[:2] == (412, "resourceModified")
    stale_path = upload(fake, token, AGENDA, b"v2", if_match=item["cTag"])
    assert error_of(stale_path)[:2] == (412, "resourceModified")
    assert fake.item_content(ANN, AGENDA) == b"v1 + notes from Bob"
    current = call(fake, "PUT", by_id, token, data=b"v2", headers={"If-Match": edited["eTag"]})
    assert current.status_code == 200 and current.json()["lastModifiedBy"]["application"]["id"] == APP
    assert upload(fake, token, AGENDA, b"v3", if_match=current.json()["cTag"]).status_code == 200
    missing = upload(fake, token, "Agendas/new.md", b"x", if_match=item["eTag"])
    assert error_of(missing)[:2] == (412, "resourceModified")
    assert fake.item_content(ANN, AGENDA) == b"v3"


def test_download_through_a_redirect(fake: FakeGraph) -> None:
    token = app_token(fake)
    item = upload(fake, token, AGENDA, "Tagesordnung: Übergabe\n".encode()).json()
    redirect = call(fake, "GET", drive_url(fake, f"items/{item['id']}/content"), token, redirects=False)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert location.startswith(f"{fake.base_url}/_download/")
    assert location == item["@microsoft.graph.downloadUrl"]
    with session_for(fake) as session:
        anonymous = session.get(location, timeout=30)  # pre-authenticated: no Authorization
    assert anonymous.content == "Tagesordnung: Übergabe\n".encode()
    assert anonymous.headers["Content-Type"] == "text/markdown"
    followed = call(fake, "GET", path_url(fake, AGENDA), token)
    assert followed.status_code == 200 and followed.content == anonymous.content
    assert [r.status for r in fake.requests[-2:]] == [302, 200]
    fake.put_item(ANN, AGENDA, b"edited in the browser", editor=BOB)
    assert requests.get(location, verify=str(fake.ca_path), timeout=30).content == b"edited in the browser"


def test_invite_and_permissions(fake: FakeGraph) -> None:
    token = app_token(fake)
    item = upload(fake, token, AGENDA, b"# Agenda\n").json()
    first = invite(fake, token, item["id"])
    assert first.status_code == 200, first.text
    [permission] = first.json()["value"]
    assert permission["roles"] == ["write"]
    assert permission["grantedToV2"]["user"]["email"] == BOB
    assert permission["grantedToV2"]["user"]["displayName"] == "Bob Builder"
    assert permission["invitation"] == {"email": BOB, "signInRequired": True}
    assert fake.sent_invitations == []
    assert fake.requests[-1].body["sendInvitation"] is False

    again = invite(fake, token, item["id"], sendInvitation=True)
    assert again.json()["value"][0]["id"] == permission["id"]
    assert fake.sent_invitations == [(item["id"], BOB)]
    listed = call(fake, "GET", drive_url(fake, f"items/{item['id']}/permissions"), token).json()["value"]
    assert [(p["roles"], p["grantedToV2"]["user"]["email"]) for p in listed] == [
        (["owner"], ANN),
        (["write"], BOB),
    ]
    assert fake.item_permissions(ANN, item["id"]) == listed

    assert error_of(invite(fake, token, item["id"], roles=["owner"]))[:2] == (400, "invalidRequest")
    assert error_of(invite(fake, token, item["id"], recipients=[]))[:2] == (400, "invalidRequest")
    guest = invite(fake, token, item["id"], recipients=[{"email": "guest@elsewhere.test"}])
    assert error_of(guest)[:2] == (403, "accessDenied")  # no new guests with app-only access
    fake.send_invitation_default = True
    implicit = {"recipients": [{"email": BOB}], "roles": ["read"]}  # no sendInvitation
    assert call(fake, "POST", drive_url(fake, f"items/{item['id']}/invite"), token, json=implicit).ok
    assert fake.sent_invitations == [(item["id"], BOB)] * 2
    assert [p["roles"] for p in fake.item_permissions(ANN, item["id"])] == [["owner"], ["write"]]

    revoked = call(
        fake, "DELETE", drive_url(fake, f"items/{item['id']}/permissions/{permission['id']}"), token
    )
    assert revoked.status_code == 204
    assert [p["roles"] for p in fake.item_permissions(ANN, item["id"])] == [["owner"]]


def test_who_may_use_a_drive(fake: FakeGraph) -> None:
    fake.add_app("calendar-only", secret=SECRET, roles=("Calendars.ReadWrite",))
    fake.add_app("reader", secret=SECRET, roles=("Files.Read.All",))
    calendars = app_token(fake, "calendar-only")
    assert error_of(upload(fake, calendars, AGENDA, b"x"))[:2] == (403, "accessDenied")
    fake.put_item(ANN, AGENDA, b"by Ann")
    reader = app_token(fake, "reader")
    assert call(fake, "GET", path_url(fake, AGENDA, ""), reader).status_code == 200
    assert error_of(upload(fake, reader, AGENDA, b"x"))[:2] == (403, "accessDenied")

    token = app_token(fake)
    no_drive = call(fake, "PUT", path_url(fake, "x.md", user=CAROL), token, data=b"x")
    assert error_of(no_drive) == (404, "ResourceNotFound", "User's mysite not found.")
    assert error_of(call(fake, "GET", drive_url(fake, "root", "ghost@acme.test"), token))[:2] == (
        404,
        "itemNotFound",
    )
    drive = call(fake, "GET", f"{fake.graph_endpoint}/users/{BOB}/drive", token).json()
    assert drive["driveType"] == "business" and drive["owner"]["user"]["email"] == BOB

    # delegated: the signed-in user's own drive (also as /me), nobody else's
    fake.add_public_client(PUBLIC)
    fake.auto_approve = ANN
    app = public(fake)
    result = app.acquire_token_by_device_flow(
        app.initiate_device_flow(scopes=["Files.ReadWrite", "Calendars.ReadWrite"])
    )
    delegated = result["access_token"]
    mine = call(
        fake, "PUT", f"{fake.graph_endpoint}/me/drive/root:/Agendas/mine.md:/content", delegated, data=b"m"
    )
    assert mine.status_code == 201, mine.text
    assert mine.json()["createdBy"]["user"]["email"] == ANN
    assert fake.requests[-1].mailbox == ANN
    assert upload(fake, delegated, AGENDA, b"x").status_code == 200  # /users/{herself}
    bobs = call(fake, "PUT", path_url(fake, "x.md", user=BOB), delegated, data=b"x")
    assert error_of(bobs)[:2] == (403, "accessDenied")
    series = get(fake, "/me/events", delegated, {"$filter": "type eq 'seriesMaster'"})
    assert series.status_code == 200 and series.json()["value"] == []
    calendars_only = app.acquire_token_by_device_flow(app.initiate_device_flow(scopes=["Calendars.Read"]))
    assert error_of(upload(fake, calendars_only["access_token"], AGENDA, b"x"))[:2] == (403, "accessDenied")


def test_faults_and_the_request_log_on_drive_paths(fake: FakeGraph) -> None:
    token = app_token(fake)
    fake.fail_next(429, retry_after=3, path_contains="/drive/")
    throttled = upload(fake, token, AGENDA, b"x")
    assert error_of(throttled)[:2] == (429, "activityLimitReached")
    assert throttled.headers["Retry-After"] == "3"
    assert upload(fake, token, AGENDA, b"x").status_code == 201
    fake.fail_next(503)  # no filter: any Graph request, drive paths included
    assert error_of(upload(fake, token, AGENDA, b"y"))[:2] == (503, "serviceNotAvailable")
    fake.drop_next(1, path_contains="/_download/")
    with pytest.raises(requests.ConnectionError):
        call(fake, "GET", path_url(fake, AGENDA), token)
    assert fake.count("PUT", "/drive/root:/Agendas/1-1 Ann & Bob.md:/content") == 3
    assert fake.count("GET", "/_download/") == 1
    assert [r.mailbox for r in fake.requests if r.method == "PUT"] == [ANN] * 3
