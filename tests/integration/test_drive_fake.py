"""The Drive v3 part of the Google fake, driven by the real google-api-python-client (static discovery),
google-auth service-account credentials with domain-wide delegation and httplib2, over https on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from tests.fakes.google import FakeGoogle

DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.events"
GOOGLE_DOC = "application/vnd.google-apps.document"
ANN = "ann@acme.test"
BOB = "bob@acme.test"
AGENDA = """<!DOCTYPE html><html><head><title>x</title><style>p{color:red}</style></head>
<body><h1>1:1 Ann / Bob &mdash; 2026-10-13</h1><p>Topics &amp; notes</p>
<ul><li>Career</li><li>Feedback <b>now</b></li></ul><p></p><p>Action items</p></body></html>"""


pytestmark = pytest.mark.usefixtures("loopback_only")


_OPEN_HTTP: list[httplib2.Http] = []


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        server.add_calendar(ANN, "Europe/Berlin")
        server.add_calendar(BOB)
        server.add_user(ANN, "Ann Lee")
        try:
            yield server
        finally:
            while _OPEN_HTTP:
                _OPEN_HTTP.pop().close()
        assert server.internal_errors == []


def service(fake: FakeGoogle, name: str, subject: str = ANN, scopes: tuple[str, ...] = (DRIVE_FILE,)) -> Any:
    creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        fake.service_account_info(), scopes=list(scopes)
    ).with_subject(subject)
    http = httplib2.Http(ca_certs=str(fake.ca_path))
    _OPEN_HTTP.append(http)
    endpoint = fake.drive_endpoint if name == "drive" else fake.calendar_endpoint
    return build(
        name,
        "v3",
        http=google_auth_httplib2.AuthorizedHttp(creds, http=http),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": endpoint},
    )


def drive(fake: FakeGoogle, subject: str = ANN, scopes: tuple[str, ...] = (DRIVE_FILE,)) -> Any:
    return service(fake, "drive", subject, scopes)


def create_doc(files: Any, name: str = "Agenda", html: str = AGENDA, **metadata: Any) -> dict[str, Any]:
    body = {"name": name, "mimeType": GOOGLE_DOC, **metadata}
    media = MediaInMemoryUpload(html.encode(), mimetype="text/html", resumable=False)
    return dict(files.create(body=body, media_body=media, fields="id,webViewLink,version").execute())


def error_of(caught: pytest.ExceptionInfo[HttpError]) -> tuple[int, str]:
    error = json.loads(caught.value.content)["error"]
    return caught.value.resp.status, str(error["errors"][0]["reason"])


# --------------------------------------------------------------------------- files.create / get


def test_multipart_create_converts_html_to_a_doc_owned_by_the_subject(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    created = create_doc(files, appProperties={"calsync": "agenda", "pair": "ann|bob"})

    assert set(created) == {"id", "webViewLink", "version"}
    assert created["webViewLink"] == f"https://docs.google.com/document/d/{created['id']}/edit?usp=drivesdk"
    assert created["version"] == "1"
    assert len(created["id"]) == 44
    upload = fake.requests[-1]
    assert (upload.method, upload.path, upload.query["uploadType"]) == (
        "POST",
        "/upload/drive/v3/files",
        "multipart",
    )
    assert upload.body == {
        "name": "Agenda",
        "mimeType": GOOGLE_DOC,
        "appProperties": {"calsync": "agenda", "pair": "ann|bob"},
    }
    assert upload.media == AGENDA.encode()

    content = fake.file_content(created["id"])
    assert content.startswith("<h1>1:1 Ann / Bob &mdash; 2026-10-13</h1>")
    assert "<style>" not in content and "<title>" not in content

    default = files.get(fileId=created["id"]).execute()
    assert default == {"kind": "drive#file", "id": created["id"], "name": "Agenda", "mimeType": GOOGLE_DOC}
    full = files.get(fileId=created["id"], fields="*").execute()
    assert full["owners"][0]["emailAddress"] == ANN
    assert full["owners"][0]["displayName"] == "Ann Lee"
    assert full["lastModifyingUser"]["emailAddress"] == ANN
    assert full["appProperties"] == {"calsync": "agenda", "pair": "ann|bob"}
    assert full["trashed"] is False and full["ownedByMe"] is True
    assert full["createdTime"] == full["modifiedTime"] and full["createdTime"].endswith("Z")
    assert "headRevisionId" not in full  # Docs have none

    [stored] = fake.drive_files(ANN)
    assert stored["id"] == created["id"] and stored["content"] == content
    assert [(p["emailAddress"], p["role"]) for p in fake.permissions_of(created["id"])] == [(ANN, "owner")]


def test_metadata_only_create_media_upload_and_plain_text_conversion(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    empty = files.create(body={"name": "Empty", "mimeType": GOOGLE_DOC}, fields="id,mimeType").execute()
    assert fake.requests[-1].path == "/drive/v3/files"
    assert fake.file_content(empty["id"]) == ""

    media = MediaInMemoryUpload(b"line 1\nline <2>\n", mimetype="text/plain", resumable=False)
    plain = files.create(body={"name": "Plain", "mimeType": GOOGLE_DOC}, media_body=media).execute()
    assert fake.file_content(plain["id"]) == "<p>line 1</p><p>line &lt;2&gt;</p>"
    assert fake.export_text(plain["id"]) == "\ufeffline 1\r\nline <2>"

    blob = files.create(
        media_body=MediaInMemoryUpload(b"raw", mimetype="text/html", resumable=False)
    ).execute()
    assert fake.requests[-1].query["uploadType"] == "media"
    assert blob["mimeType"] == "text/html"  # no conversion without a Docs mimeType
    assert files.get_media(fileId=blob["id"]).execute() == b"raw"
    with pytest.raises(HttpError) as caught:
        files.get_media(fileId=plain["id"]).execute()
    assert error_of(caught) == (403, "fileNotDownloadable")


def test_fields_and_writability_are_checked(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    with pytest.raises(HttpError) as caught:
        files.create(body={"name": "x"}, fields="id,noSuchField").execute()
    assert error_of(caught) == (400, "invalidParameter")
    with pytest.raises(HttpError) as caught:
        files.create(body={"name": "x", "version": "7"}).execute()
    assert error_of(caught) == (403, "fieldNotWritable")
    with pytest.raises(HttpError) as caught:
        files.create(body={"name": "x", "appProperties": {"k": "v" * 124}}).execute()
    assert caught.value.resp.status == 400


# --------------------------------------------------------------------------- files.list


def test_list_by_app_properties_pages_and_rejects_unknown_syntax(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    ids = []
    for n in range(5):
        pair = "ann|bob" if n % 2 == 0 else "ann|cid"
        ids.append(create_doc(files, f"Agenda {n}", appProperties={"calsync": "agenda", "pair": pair})["id"])
    fake.trash(ids[4])

    q = "appProperties has { key='pair' and value='ann|bob' } and trashed = false"
    pages = []
    request = files.list(q=q, pageSize=1, fields="nextPageToken,files(id,name,appProperties)", spaces="drive")
    while request is not None:
        page = request.execute()
        pages.append(page)
        request = files.list_next(request, page)
    assert [[f["id"] for f in p["files"]] for p in pages] == [[ids[0]], [ids[2]]]
    assert set(pages[0]) == {"nextPageToken", "files"} and set(pages[-1]) == {"files"}
    assert pages[0]["files"][0] == {
        "id": ids[0],
        "name": "Agenda 0",
        "appProperties": {"calsync": "agenda", "pair": "ann|bob"},
    }

    every = files.list(q="appProperties has { key='calsync' and value='agenda' }", corpora="user").execute()
    assert [f["id"] for f in every["files"]] == ids  # trashed files too unless the query says otherwise
    assert every["kind"] == "drive#fileList" and set(every["files"][0]) == {"kind", "id", "name", "mimeType"}
    named = files.list(q=r"name = 'Agenda 3' and mimeType = 'application/vnd.google-apps.document'").execute()
    assert [f["id"] for f in named["files"]] == [ids[3]]
    quoted = create_doc(files, "Bob's agenda")["id"]
    assert [f["id"] for f in files.list(q=r"name = 'Bob\'s agenda'").execute()["files"]] == [quoted]
    assert len(files.list(q="'root' in parents and trashed = true").execute()["files"]) == 1

    for bad in (
        "name = 'x' or name = 'y'",
        "appProperties has { key='a' }",
        "bogus = 1",
        "name = 'unterminated",
    ):
        with pytest.raises(HttpError) as caught:
            files.list(q=bad).execute()
        assert error_of(caught) == (400, "invalid"), bad
    with pytest.raises(HttpError) as caught:
        files.list(pageSize=1001).execute()
    assert caught.value.resp.status == 400


# --------------------------------------------------------------------------- files.export


def test_export_plain_text_html_and_markdown(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    doc = create_doc(files)

    text = files.export(fileId=doc["id"], mimeType="text/plain").execute()
    assert isinstance(text, bytes)
    assert text.decode() == (
        "\ufeff1:1 Ann / Bob — 2026-10-13\r\nTopics & notes\r\n* Career\r\n* Feedback now\r\n\r\nAction items"
    )
    assert text.decode() == fake.export_text(doc["id"])
    assert fake.requests[-1].path == f"/drive/v3/files/{doc['id']}/export"

    page = files.export(fileId=doc["id"], mimeType="text/html").execute().decode()
    assert page.startswith('<html><head><meta content="text/html; charset=UTF-8"')
    assert "<style" in page and fake.file_content(doc["id"]) in page and page.endswith("</body></html>")

    markdown = files.export(fileId=doc["id"], mimeType="text/markdown").execute().decode()
    assert markdown.startswith(
        "# 1:1 Ann / Bob — 2026-10-13\n\nTopics & notes\n\n* Career\n* Feedback **now**\n"
    )

    response, _ = files._http.request(  # the raw answer: Content-Type of the export, not JSON
        f"{fake.drive_endpoint}files/{doc['id']}/export?mimeType=text%2Fplain"
    )
    assert response["content-type"].startswith("text/plain")

    blob = files.create(
        body={"name": "x.html"}, media_body=MediaInMemoryUpload(b"<p>x</p>", mimetype="text/html")
    ).execute()
    with pytest.raises(HttpError) as caught:
        files.export(fileId=blob["id"], mimeType="text/plain").execute()
    assert error_of(caught) == (403, "fileNotExportable")
    with pytest.raises(HttpError) as caught:
        files.export(fileId=doc["id"], mimeType="image/png").execute()
    assert caught.value.resp.status == 400


# --------------------------------------------------------------------------- files.update


def test_update_media_and_metadata_bump_the_version(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    doc = create_doc(files, appProperties={"a": "1", "b": "2"})

    media = MediaInMemoryUpload(b"<html><body><p>v2</p></body></html>", mimetype="text/html", resumable=False)
    updated = files.update(fileId=doc["id"], media_body=media, fields="version,modifiedTime").execute()
    request = fake.requests[-1]
    assert (request.method, request.path, request.query["uploadType"]) == (
        "PATCH",
        f"/upload/drive/v3/files/{doc['id']}",
        "media",
    )
    assert updated["version"] == "2"
    assert fake.file_content(doc["id"]) == "<p>v2</p>"

    both = files.update(
        fileId=doc["id"],
        body={"name": "Agenda v3"},
        media_body=MediaInMemoryUpload(b"<p>v3</p>", mimetype="text/html", resumable=False),
        fields="version,name",
    ).execute()
    assert fake.requests[-1].query["uploadType"] == "multipart"
    assert both == {"version": "3", "name": "Agenda v3"}

    merged = files.update(
        fileId=doc["id"], body={"appProperties": {"b": None, "c": "3"}}, fields="appProperties,version"
    ).execute()
    assert merged == {"appProperties": {"a": "1", "c": "3"}, "version": "4"}
    with pytest.raises(HttpError) as caught:
        files.update(fileId=doc["id"], body={"parents": ["elsewhere"]}).execute()
    assert error_of(caught) == (403, "fieldNotWritable")


def test_a_human_edit_shows_in_version_and_last_modifying_user(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    doc = create_doc(files)
    files_bob = drive(fake, BOB).files()
    drive(fake).permissions().create(
        fileId=doc["id"],
        body={"type": "user", "role": "writer", "emailAddress": BOB},
        sendNotificationEmail=False,
    ).execute()
    before = files.get(fileId=doc["id"], fields="version,modifiedTime").execute()

    fake.human_edit(doc["id"], "<p>Bob was here</p>", editor=BOB)

    after = files.get(fileId=doc["id"], fields="version,modifiedTime,lastModifyingUser").execute()
    assert int(after["version"]) == int(before["version"]) + 1
    assert after["modifiedTime"] > before["modifiedTime"]
    assert after["lastModifyingUser"]["emailAddress"] == BOB
    assert after["lastModifyingUser"]["me"] is False
    assert (
        files_bob.get(fileId=doc["id"], fields="lastModifyingUser").execute()["lastModifyingUser"]["me"]
        is True
    )
    assert fake.export_text(doc["id"]) == "\ufeffBob was here"
    with pytest.raises(PermissionError):
        fake.human_edit(doc["id"], "<p>x</p>", editor="eve@acme.test")


# --------------------------------------------------------------------------- permissions and visibility


def test_sharing_notifications_and_no_duplicate_permissions(fake: FakeGoogle) -> None:
    service_ann = drive(fake)
    doc = create_doc(service_ann.files())
    permissions = service_ann.permissions()

    quiet = permissions.create(
        fileId=doc["id"],
        body={"type": "user", "role": "reader", "emailAddress": BOB},
        sendNotificationEmail=False,
        fields="id,type,role,emailAddress",
    ).execute()
    assert quiet["emailAddress"] == BOB and quiet["role"] == "reader" and quiet["type"] == "user"
    assert fake.notifications == []
    assert fake.requests[-1].query["sendNotificationEmail"] == "false"

    again = permissions.create(
        fileId=doc["id"], body={"type": "user", "role": "commenter", "emailAddress": BOB}
    ).execute()
    assert again == {"kind": "drive#permission", "id": quiet["id"], "type": "user", "role": "commenter"}
    assert fake.notifications == [(doc["id"], BOB)]  # Drive notifies unless told not to

    listed = permissions.list(fileId=doc["id"], fields="permissions(id,type,role,emailAddress)").execute()
    assert [(p["emailAddress"], p["role"]) for p in listed["permissions"]] == [
        (ANN, "owner"),
        (BOB, "commenter"),
    ]
    assert len(fake.permissions_of(doc["id"])) == 2

    with pytest.raises(HttpError) as caught:
        permissions.create(
            fileId=doc["id"], body={"type": "user", "role": "owner", "emailAddress": BOB}
        ).execute()
    assert caught.value.resp.status == 403


def test_other_users_see_a_file_only_once_shared(fake: FakeGoogle) -> None:
    fake.grant_delegation("cid@acme.test")
    doc = create_doc(drive(fake).files())
    bob = drive(fake, BOB).files()

    with pytest.raises(HttpError) as caught:
        bob.get(fileId=doc["id"]).execute()
    assert error_of(caught) == (404, "notFound")
    assert json.loads(caught.value.content)["error"]["message"] == f"File not found: {doc['id']}."
    assert bob.list(q="trashed = false").execute()["files"] == []

    drive(fake).permissions().create(
        fileId=doc["id"], body={"type": "user", "role": "reader", "emailAddress": BOB}
    ).execute()
    assert bob.get(fileId=doc["id"], fields="id,ownedByMe").execute() == {"id": doc["id"], "ownedByMe": False}
    assert [f["id"] for f in bob.list(q="trashed = false").execute()["files"]] == [doc["id"]]
    assert bob.export(fileId=doc["id"], mimeType="text/plain").execute().startswith(b"\xef\xbb\xbf1:1")

    with pytest.raises(HttpError) as caught:  # a reader may not edit or share
        bob.update(fileId=doc["id"], body={"name": "mine"}).execute()
    assert error_of(caught) == (403, "insufficientFilePermissions")
    with pytest.raises(HttpError) as caught:
        drive(fake, BOB).permissions().create(
            fileId=doc["id"], body={"type": "user", "role": "reader", "emailAddress": "cid@acme.test"}
        ).execute()
    assert error_of(caught) == (403, "insufficientFilePermissions")
    with pytest.raises(HttpError) as caught:
        drive(fake, "cid@acme.test").files().get(fileId=doc["id"]).execute()
    assert caught.value.resp.status == 404


def test_drive_scopes_and_the_drive_file_scope_limit(fake: FakeGoogle) -> None:
    with pytest.raises(HttpError) as caught:
        drive(fake, scopes=(CALENDAR_SCOPE,)).files().list().execute()
    assert error_of(caught) == (403, "insufficientPermissions")

    by_hand = fake.put_file(ANN, "Notes made in the browser", "<p>private</p>", by_app=False)
    by_app = create_doc(drive(fake).files())
    listed = drive(fake).files().list().execute()["files"]
    assert [f["id"] for f in listed] == [by_app["id"]]  # drive.file: only what the app made
    full = drive(fake, scopes=("https://www.googleapis.com/auth/drive",)).files().list().execute()["files"]
    assert {f["id"] for f in full} == {by_hand["id"], by_app["id"]}


# --------------------------------------------------------------------------- faults


def test_a_429_with_retry_after_on_a_drive_path(fake: FakeGoogle) -> None:
    files = drive(fake).files()
    files.list().execute()  # the token first
    fake.fail_next(1, 429, retry_after=2, path_contains="/upload/drive/v3/files")

    with pytest.raises(HttpError) as caught:
        create_doc(files)
    assert caught.value.resp.status == 429
    assert caught.value.resp["retry-after"] == "2"
    assert error_of(caught) == (429, "rateLimitExceeded")
    assert fake.drive_files() == []  # nothing was created
    create_doc(files)
    assert fake.count("POST", "/upload/drive/v3/files") == 2
    assert [r.status for r in fake.requests if "/drive/" in r.path] == [200, 429, 200]
