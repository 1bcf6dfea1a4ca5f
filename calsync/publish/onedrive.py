"""The ``onedrive`` backend: a Markdown document per agenda in the organizer's OneDrive, linked from a
calsync-marked section of the event body (Microsoft Graph).

- The document is uploaded to ``calsync agendas/1-1 agenda <key>.md`` with
  ``@microsoft.graph.conflictBehavior=fail``: its path is its key, so one created before a crash is
  found again (a 409, or the GET before it), never made twice.
- It is shared with the other participant only: ``/invite`` with ``roles=["write"]``,
  ``requireSignIn=true`` and ``sendInvitation=false``.
- The link goes into the event body between ``<!-- calsync:agenda -->`` markers, at the start of the
  body; every other byte of the body (the organizer's words, a Teams meeting block) is sent back as it
  was read. Graph has no ``sendUpdates``: a PATCH of a meeting's body can email the attendees, so an
  event is written at most once per agenda, with ``If-Match`` (a 412 means: read again, merge again).
- A rolling document gets its new section on top with ``If-Match`` on the file's eTag.

Permissions: app-only ``Calendars.ReadWrite`` and ``Files.ReadWrite.All``; one person's sign-in
``Calendars.ReadWrite`` and ``Files.ReadWrite`` (``calsync auth microsoft --agendas``).
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from calsync.agenda import (
    Agenda,
    has_link,
    mark_markdown,
    prepend_markdown,
    section_marker,
    with_html_link,
    with_text_link,
)
from calsync.publish.base import Doc, Meeting, PublishError
from calsync.sources.microsoft import PREFER, GraphClient, MailboxUnavailable

FOLDER = "calsync agendas"
_CONFLICT_ATTEMPTS = 4
_HTML_BODY = {"Prefer": f'{PREFER}, outlook.body-content-type="html"'}


class _Graph:
    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def send(self, method: str, user: str, path: str, what: str, **options: Any) -> Any:
        url = self.client.url("users", user) + path
        try:
            return self.client.send(method, url, user, **options)
        except MailboxUnavailable as exc:
            if exc.status in (404, 409, 412):
                raise
            if exc.status == 403:
                need = "Files.ReadWrite.All" if path.startswith("/drive") else "Calendars.ReadWrite"
                raise PublishError(
                    f"{what} ({user}): access denied. Agendas need the application permission {need} "
                    f"with admin consent (one person's sign-in: `calsync auth microsoft --agendas`); "
                    f"Graph said: {exc}"
                ) from exc
            raise PublishError(f"{what} ({user}): {exc}") from exc


class OneDriveDocuments(_Graph):
    name = "onedrive"

    def _path(self, doc_key: str) -> str:
        return urllib.parse.quote(f"{FOLDER}/1-1 agenda {doc_key[:16]}.md")

    def find(self, doc_key: str, owner: str) -> Doc | None:
        try:
            item = self.send(
                "GET", owner, f"/drive/root:/{self._path(doc_key)}", "cannot look for the agenda document"
            ).json()
        except MailboxUnavailable as exc:
            if exc.status == 404:
                return None
            raise PublishError(f"cannot look for the agenda document ({owner}): {exc}") from exc
        return _doc(item, owner)

    def create(
        self, doc_key: str, owner: str, title: str, agenda: Agenda, section_id: str | None = None
    ) -> Doc:
        content = mark_markdown(agenda.markdown, section_id) if section_id else agenda.markdown
        try:
            item = self.send(
                "PUT",
                owner,
                f"/drive/root:/{self._path(doc_key)}:/content",
                "cannot upload the agenda document",
                params={"@microsoft.graph.conflictBehavior": "fail"},
                data=content.encode("utf-8"),
                headers={"Content-Type": "text/markdown; charset=utf-8"},
            ).json()
        except MailboxUnavailable as exc:
            if exc.status == 409:  # uploaded before (a crash, or a retried request): that one it is
                found = self.find(doc_key, owner)
                if found is not None:
                    return found
            raise PublishError(f"cannot upload the agenda document ({owner}): {exc}") from exc
        return _doc(item, owner)

    def share(self, doc: Doc, email: str) -> None:
        try:
            self.send(
                "POST",
                doc.owner,
                f"/drive/items/{urllib.parse.quote(doc.id)}/invite",
                f"cannot share the agenda document with {email}",
                json={
                    "recipients": [{"email": email}],
                    "roles": ["write"],
                    "requireSignIn": True,
                    "sendInvitation": False,
                },
            )
        except MailboxUnavailable as exc:
            raise PublishError(f"cannot share the agenda document with {email}: {exc}") from exc

    def read(self, doc: Doc) -> str:
        text, _ = self._read(doc)
        return text

    def _read(self, doc: Doc) -> tuple[str, str]:
        """The document's text and the eTag it had when read."""
        path = f"/drive/items/{urllib.parse.quote(doc.id)}"
        try:
            item = self.send("GET", doc.owner, path, "cannot read the agenda document").json()
            content = self.send("GET", doc.owner, f"{path}/content", "cannot read the agenda document")
        except MailboxUnavailable as exc:
            raise PublishError(f"cannot read the agenda document {doc.url}: {exc}") from exc
        return content.content.decode("utf-8-sig", "replace"), str(item.get("eTag") or "")

    def prepend(self, doc: Doc, agenda: Agenda, section_id: str) -> bool:
        for _ in range(_CONFLICT_ATTEMPTS):
            text, etag = self._read(doc)
            if section_marker(section_id) in text:
                return False
            try:
                self.send(
                    "PUT",
                    doc.owner,
                    f"/drive/items/{urllib.parse.quote(doc.id)}/content",
                    "cannot add a section to the agenda document",
                    data=prepend_markdown(text, agenda.markdown, section_id).encode("utf-8"),
                    headers={"Content-Type": "text/markdown; charset=utf-8", "If-Match": etag},
                )
                return True
            except MailboxUnavailable as exc:
                if exc.status != 412:
                    raise PublishError(f"cannot add a section to {doc.url}: {exc}") from exc
                # someone saved the document meanwhile: read it again, theirs is kept
        raise PublishError(f"the agenda document {doc.url} kept changing; trying again next pass")


class GraphEventLinks(_Graph):
    """Writes a document's link into calsync's marked section of an event body."""

    def link(self, meeting: Meeting, doc: Doc) -> bool:
        user = meeting.organizer
        target = self._target(meeting)
        path = f"/events/{urllib.parse.quote(target)}"
        for _ in range(_CONFLICT_ATTEMPTS):
            try:
                event = self.send(
                    "GET",
                    user,
                    path,
                    "cannot read the event",
                    params={"$select": "body"},
                    headers=_HTML_BODY,
                ).json()
            except MailboxUnavailable as exc:
                raise PublishError(f"cannot read the event ({user}): {exc}") from exc
            body = event.get("body") or {}
            content = str(body.get("content") or "")
            if has_link(content, doc.url):
                return False
            if str(body.get("contentType") or "html").lower() == "text":
                new = {"contentType": "text", "content": with_text_link(content, doc.url)}
            else:
                new = {"contentType": "html", "content": with_html_link(content, doc.url)}
            try:
                self.send(
                    "PATCH",
                    user,
                    path,
                    "cannot link the agenda in the event",
                    json={"body": new},
                    headers={"If-Match": str(event.get("@odata.etag") or "*")},
                )
                return True
            except MailboxUnavailable as exc:
                if exc.status != 412:
                    raise PublishError(f"cannot link the agenda in the event ({user}): {exc}") from exc
        raise PublishError(
            f"the event of {user} kept changing while calsync linked it; trying again next pass"
        )

    def _target(self, meeting: Meeting) -> str:
        """The id of the organizer's event: the occurrence, or the series master / one-off event."""
        user = meeting.organizer
        uid = meeting.series_id.replace("'", "''")
        try:
            found = self.send(
                "GET",
                user,
                "/events",
                "cannot find the event",
                params={"$filter": f"iCalUId eq '{uid}'", "$select": "id,type"},
            ).json()
        except MailboxUnavailable as exc:
            raise PublishError(f"cannot find the event ({user}): {exc}") from exc
        events = found.get("value") or []
        if not events:
            raise PublishError(f"the event is not in the organizer's ({user}) calendar; nothing linked")
        event = events[0]
        if meeting.original_start is None or event.get("type") != "seriesMaster":
            return str(event["id"])
        lo = min(meeting.original_start, meeting.start) - timedelta(days=1)
        hi = max(meeting.original_start, meeting.start) + timedelta(days=1)
        try:
            answer = self.send(
                "GET",
                user,
                f"/events/{urllib.parse.quote(str(event['id']))}/instances",
                "cannot find the occurrence",
                params={
                    "startDateTime": _z(lo),
                    "endDateTime": _z(hi),
                    "$select": "id,originalStart,start",
                },
            ).json()
        except MailboxUnavailable as exc:
            raise PublishError(f"cannot find the occurrence ({user}): {exc}") from exc
        for instance in answer.get("value") or ():
            original = instance.get("originalStart")
            if original and _instant(str(original)) == meeting.original_start:
                return str(instance["id"])
        raise PublishError(f"the occurrence of {meeting.original_start} is not in {user}'s calendar")


def _doc(item: dict[str, Any], owner: str) -> Doc:
    return Doc(str(item["id"]), str(item["webUrl"]), owner)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
