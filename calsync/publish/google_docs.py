"""The ``google-docs`` backend: a Google Doc per agenda, attached to the event in Google Calendar.

As the organizer (domain-wide delegation, or the person who signed in), calsync:

- creates the Doc with the Drive API, uploading the agenda's HTML for Google to convert, with the
  agenda's key in ``appProperties`` (so that a Doc created before a crash is found, not made again);
- shares it with the other participant only (``writer``, ``sendNotificationEmail=false``);
- attaches it to the event occurrence: ``events.patch`` with the merged ``attachments`` list (a patch
  replaces the whole array), ``supportsAttachments=true``, ``sendUpdates=none``, ``If-Match`` with the
  event's etag (a 412 means: read again, merge again, try again), and the Doc's id in
  ``extendedProperties.private`` as bookkeeping. The description is not touched. A document that is
  not a Drive file (the ``local`` backend on a Google source) goes into one marked line of the
  description instead, the rest of which is kept as it is.

Scopes: ``calendar.events`` and ``drive.file`` (calsync sees only the files it created).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from calsync.agenda import Agenda, has_link, mark_html, prepend_html, with_text_link
from calsync.publish.base import Doc, Meeting, PublishError
from calsync.sources.google import CalendarUnavailable, SyncTokenExpired, execute
from calsync.sources.retry import RateLimiter, RetryPolicy

AGENDA_SCOPES = (
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/drive.file",
)
DOC_MIME = "application/vnd.google-apps.document"
KEY_PROPERTY = "calsyncAgenda"  # appProperties: the document's key
SECTION_PROPERTY = "calsyncSection"  # appProperties: the newest section of a rolling document
LINK_PROPERTY = "calsyncAgenda"  # extendedProperties.private of an event: the linked Doc's id
MAX_ATTACHMENTS = 25
_CONFLICT_ATTEMPTS = 4


class _Conflict(Exception):
    """412: the resource changed since it was read."""


class _Google:
    """Runs requests as one user, rate-limited and retried like the sources do."""

    def __init__(self, retry: RetryPolicy | None, limiter: RateLimiter | None) -> None:
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RateLimiter()
        self.requests = 0

    def run(self, request: Any, user: str, what: str, retry: RetryPolicy | None = None) -> Any:
        self.requests += 1
        try:
            return execute(request, user, retry or self.retry, self.limiter)
        except (CalendarUnavailable, SyncTokenExpired) as exc:
            cause = exc.__cause__
            if isinstance(cause, HttpError) and int(cause.resp.status) == 412:
                raise _Conflict(str(exc)) from exc
            raise PublishError(f"{what} as {user}: {exc}") from exc


class DriveDocuments(_Google):
    name = "google-docs"

    def __init__(
        self,
        drive_for: Callable[[str], Any],
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(retry, limiter)
        self.drive_for = drive_for

    def find(self, doc_key: str, owner: str) -> Doc | None:
        query = f"appProperties has {{ key='{KEY_PROPERTY}' and value='{doc_key}' }} and trashed = false"
        answer = self.run(
            self.drive_for(owner)
            .files()
            .list(q=query, spaces="drive", pageSize=10, fields="files(id,webViewLink)"),
            owner,
            "cannot look for the agenda document",
        )
        files = answer.get("files") or []
        return Doc(str(files[0]["id"]), str(files[0]["webViewLink"]), owner) if files else None

    def create(
        self, doc_key: str, owner: str, title: str, agenda: Agenda, section_id: str | None = None
    ) -> Doc:
        content = mark_html(agenda.html, section_id) if section_id else agenda.html
        metadata = {
            "name": title,
            "mimeType": DOC_MIME,
            "description": "1:1 agenda, written by calsync for the two participants",
            "appProperties": {KEY_PROPERTY: doc_key, SECTION_PROPERTY: section_id or ""},
        }
        drive = self.drive_for(owner)
        last: PublishError | None = None
        # A create is not idempotent: after a failure, look before trying again (the Doc may exist).
        for _ in range(self.retry.attempts):
            media = MediaInMemoryUpload(content.encode("utf-8"), mimetype="text/html", resumable=False)
            request = drive.files().create(body=metadata, media_body=media, fields="id,webViewLink")
            try:
                made = self.run(request, owner, "cannot create the agenda document", RetryPolicy(attempts=1))
                return Doc(str(made["id"]), str(made["webViewLink"]), owner)
            except PublishError as exc:
                last = exc
            found = self.find(doc_key, owner)
            if found is not None:
                return found
            self.retry.sleep(self.retry.delay(0, None))
        assert last is not None
        raise last

    def share(self, doc: Doc, email: str) -> None:
        self.run(
            self.drive_for(doc.owner)
            .permissions()
            .create(
                fileId=doc.id,
                body={"type": "user", "role": "writer", "emailAddress": email},
                sendNotificationEmail=False,
                fields="id",
            ),
            doc.owner,
            f"cannot share the agenda document with {email}",
        )

    def read(self, doc: Doc) -> str:
        return self._export(doc, "text/plain")

    def _export(self, doc: Doc, mime: str) -> str:
        data = self.run(
            self.drive_for(doc.owner).files().export(fileId=doc.id, mimeType=mime),
            doc.owner,
            f"cannot read the agenda document {doc.url}",
        )
        return data.decode("utf-8-sig") if isinstance(data, bytes) else str(data)

    def prepend(self, doc: Doc, agenda: Agenda, section_id: str) -> bool:
        drive = self.drive_for(doc.owner)
        meta = self.run(
            drive.files().get(fileId=doc.id, fields="appProperties"),
            doc.owner,
            f"cannot read the agenda document {doc.url}",
        )
        if (meta.get("appProperties") or {}).get(SECTION_PROPERTY) == section_id:
            return False
        # Drive has no conditional update: an edit made between this export and the upload (a few
        # hundred milliseconds) would be lost; everything written before it is kept.
        content = prepend_html(self._export(doc, "text/html"), agenda.html)
        media = MediaInMemoryUpload(content.encode("utf-8"), mimetype="text/html", resumable=False)
        self.run(
            drive.files().update(
                fileId=doc.id,
                body={"appProperties": {SECTION_PROPERTY: section_id}},
                media_body=media,
                fields="id",
            ),
            doc.owner,
            f"cannot add a section to the agenda document {doc.url}",
        )
        return True


class GoogleEventLinks(_Google):
    """Attaches a Doc to an event (or writes a non-Drive link into its description)."""

    def __init__(
        self,
        calendar_for: Callable[[str], Any],
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(retry, limiter)
        self.calendar_for = calendar_for

    def link(self, meeting: Meeting, doc: Doc) -> bool:
        user = meeting.organizer
        calendar = self.calendar_for(user)
        event = self._event(calendar, meeting)
        for _ in range(_CONFLICT_ATTEMPTS):
            if _linked(event, doc):
                return False
            request = calendar.events().patch(
                calendarId=user,
                eventId=event["id"],
                body=_changes(event, doc),
                supportsAttachments=True,
                sendUpdates="none",
            )
            request.headers["If-Match"] = event["etag"]
            try:
                self.run(request, user, "cannot link the agenda in the event")
                return True
            except _Conflict:
                # someone changed the event since it was read: read it again and merge again
                event = self.run(
                    calendar.events().get(calendarId=user, eventId=event["id"]),
                    user,
                    "cannot read the event again",
                )
        raise PublishError(
            f"the event of {user} kept changing while calsync linked its agenda; trying again next pass"
        )

    def _event(self, calendar: Any, meeting: Meeting) -> dict[str, Any]:
        """The organizer's copy of the event: the occurrence itself, or the series / one-off event."""
        user = meeting.organizer
        found = self.run(
            calendar.events().list(calendarId=user, iCalUID=meeting.series_id, showDeleted=False),
            user,
            "cannot find the event",
        )
        items = [e for e in found.get("items") or () if not e.get("recurringEventId")]
        if not items:
            raise PublishError(f"the event is not in the organizer's ({user}) calendar; nothing linked")
        event: dict[str, Any] = items[0]
        if meeting.original_start is None or not event.get("recurrence"):
            return event
        answer = self.run(
            calendar.events().instances(
                calendarId=user, eventId=event["id"], originalStart=meeting.original_start.isoformat()
            ),
            user,
            "cannot find the occurrence",
        )
        instances = answer.get("items") or []
        if not instances:
            raise PublishError(f"the occurrence of {meeting.original_start} is not in {user}'s calendar")
        instance: dict[str, Any] = instances[0]
        return instance


def _linked(event: dict[str, Any], doc: Doc) -> bool:
    attached = any(
        a.get("fileId") == doc.id or a.get("fileUrl") == doc.url for a in event.get("attachments") or ()
    )
    return attached or has_link(str(event.get("description") or ""), doc.url)


def _is_drive(doc: Doc) -> bool:
    return doc.url.startswith(("https://docs.google.com/", "https://drive.google.com/"))


def _changes(event: dict[str, Any], doc: Doc) -> dict[str, Any]:
    attachments = list(event.get("attachments") or ())
    if _is_drive(doc) and len(attachments) < MAX_ATTACHMENTS:
        return {
            "attachments": [*attachments, {"fileUrl": doc.url, "title": "1:1 agenda", "mimeType": DOC_MIME}],
            "extendedProperties": {"private": {LINK_PROPERTY: doc.id}},
        }
    # not a Drive file, or no room for another attachment: one marked line of the description
    return {
        "description": with_text_link(str(event.get("description") or ""), doc.url),
        "extendedProperties": {"private": {LINK_PROPERTY: doc.id}},
    }
