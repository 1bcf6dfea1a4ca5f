"""Microsoft 365 through Microsoft Graph: delta sync of each mailbox's calendarView, and its conversion
to the normalised model.

Conversion
----------

Graph's ``calendarView`` returns instances, not rules: ``occurrence`` and ``exception`` items of a
series (pointing at it by ``seriesMasterId``) and ``singleInstance`` events. A series master, fetched
on its own, carries the ``recurrence``. Each becomes the VEVENT it stands for and goes through the
ICS reader, so Graph series are expanded by the same engine as every other provider's:

- a master gets an RRULE from its pattern, in the zone it was scheduled in (Windows names mapped);
- each instance becomes an override at its ``originalStart``;
- an occurrence the pattern produces but the view does not list was cancelled (Graph may simply drop
  it): the master says the view listed every instance of its span, and the reader marks those
  missing as cancelled;
- ``isCancelled`` instances are cancelled; stubs without subject or attendees inherit the master's;
- the mailbox owner's own answer (``responseStatus``) is their attendee status; ``resource``
  attendees are rooms; ``isAllDay`` events are whole days;
- ``showAs`` is Outlook's busy status (``X-MICROSOFT-CDO-BUSYSTATUS``; an occurrence's stub has none
  and takes its master's): an ``oof`` event is an out-of-office block, which the reader turns into
  absences of its organizer (the mailbox's owner when it names none) and never into meetings. Each
  mailbox's calendar names its owner.

Sync
----
Each mailbox is read with ``calendarView/delta`` over a fixed span (the report's sync window plus
:data:`RELIST_DAYS` ahead), cut into :data:`PARTS` consecutive parts, each following
``@odata.nextLink`` to its own ``@odata.deltaLink``; the links are kept in the state file. A full read
sends every part's first page and the listing of the mailbox's series masters in one ``$batch``, so
that a mailbox of up to ``PARTS x PAGE_SIZE`` instances is one round trip (Graph's pages hold at most
:data:`PAGE_SIZE`). Later runs send the parts' links in one ``$batch`` and apply what changed
(``@removed`` items leave); a run with no changes is one request per mailbox. An instance that moved
from one part to another is removed from one and added to the other: a removal drops a stored
instance only when its stored times overlap the part that removed it, so the order in which the parts'
answers are applied does not matter. A master is fetched again only when the delta lists instances of
its series. Only what could count is kept: single instances of two people, the owner's own
out-of-office blocks (one person or all day as they are; an invitation to someone else's block is not
the owner's absence), and the instances of series whose master is either (the others' masters are
remembered as ignored). People the source is told to ignore (``[detect] ignore_attendees``: an
assistant who organises the 1:1s, a note-taking bot) are not counted, so that their 1:1s are kept. A
state kept by an older rule, or under another ignore list (:func:`keep_rule`), is read in full once.
When Graph answers 410 (``SyncStateNotFound``) or the report
window has moved past the span, the mailbox's state is dropped and read in full again.

A mailbox that cannot be synced now (no access, Graph failing) is judged from its stored state when
there is one: its reading says ``stored_at`` (when it was last synced), and a problem says why it could
not be read now; without a stored state it is a problem of an unread calendar, with its owner.
:func:`stored_calendars` gives the stored readings for when the source cannot sign in at all.

Absentees
---------
People whose out-of-office counts but whose mailboxes are not read (the reports of the managers read)
are asked about through a mailbox that is: ``POST /users/{mailbox}/calendar/getSchedule``, which needs
no permission beyond the ``Calendars.Read(Write)`` calsync has (application or delegated), answers
:data:`SCHEDULES_PER_REQUEST` people a request over a span of less than 62 days (the window is cut into
spans of :data:`SCHEDULE_DAYS`, :data:`SCHEDULE_DAYS_FALLBACK` if Graph refuses that as too long), and
goes in JSON batches (at most :data:`PER_MAILBOX` requests through one mailbox in a batch, the
mailboxes just read taking turns). Its ``oof`` items are timed absences (free/busy does not say which
blocks were all day, nor who organised them); a person Graph cannot tell about (its per-schedule
``error``) is a problem of theirs. With calsync's window of 194 days that is 4 requests per 20 people
a cycle, and up to 100 people in one HTTP request (with five mailboxes or more to ask through).
Requests carry ``Prefer: outlook.timezone="UTC"`` and ``odata.maxpagesize``; 429 and 503 are retried
after their ``Retry-After``, other 5xx and network errors with backoff, never more than
:data:`PER_MAILBOX` at once per mailbox (Exchange's limit).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import icalendar
import requests

from calsync.config import DEFAULT_CONCURRENCY, MicrosoftSourceConfig
from calsync.detect import NOBODY, Ignored
from calsync.model import Absence, CalendarData, Problem
from calsync.progress import NoProgress, Progress
from calsync.sources.base import (
    ReadCache,
    Reading,
    SourceResult,
    Window,
    cached_reading,
    new_revision,
    read_concurrently,
)
from calsync.sources.graph_recurrence import iana_zone, rrule_for
from calsync.sources.ics import LISTED_FROM, LISTED_TO, read_converted
from calsync.sources.microsoft_auth import (
    DELEGATED_SCOPES,
    AuthError,
    TokenProvider,
    session_for,
    token_provider,
)
from calsync.sources.retry import RateLimiter, RetryPolicy, check
from calsync.store import CalendarState, StateStore
from calsync.telemetry import MICROSOFT, REQUESTS

Event = Mapping[str, Any]

_RESPONSE = {
    "accepted": "ACCEPTED",
    "organizer": "ACCEPTED",
    "declined": "DECLINED",
    "tentativelyAccepted": "TENTATIVE",
    "notResponded": "NEEDS-ACTION",
    "none": "NEEDS-ACTION",
}
_FRACTION = re.compile(r"(\.\d{6})\d+")
#: Outlook's busy status of an event (what its ICS export writes): Graph's ``showAs`` as that property.
BUSY_STATUS = "X-MICROSOFT-CDO-BUSYSTATUS"
_SHOW_AS = {
    "free": "FREE",
    "tentative": "TENTATIVE",
    "busy": "BUSY",
    "oof": "OOF",
    "workingelsewhere": "WORKINGELSEWHERE",
}


def graph_calendar_data(
    instances: Iterable[Event],
    masters: Mapping[str, Event],
    mailbox: str,
    listed: Window,
    window: Window,
    default_tz: tzinfo,
) -> tuple[CalendarData, list[Problem]]:
    """One mailbox's calendar: the view's instances (listed over ``listed``) and their series masters."""
    owner = mailbox.lower()

    def convert(item: tuple[bool, Event]) -> icalendar.Event | None:
        is_master, event = item
        if is_master:
            return _master(event, owner, listed, default_tz)
        return _instance(event, masters, owner, default_tz)

    items = [(True, master) for master in masters.values()] + [(False, instance) for instance in instances]
    data, problems = read_converted(
        items, convert, lambda item: _describe(item[1]), mailbox, window, default_tz, owner=owner
    )
    return data, problems


def _zone_of(event: Event, fallback: tzinfo) -> tzinfo:
    """The zone an event was scheduled in: its original start zone, else its recurrence's.

    Not ``start.timeZone``: that is the zone the request preferred (UTC). Outlook writes "Customized
    Time Zone" (and other names no table knows) for zones with custom rules; such an event is read in
    the org's zone rather than lost. The times Graph sends are exact either way; only a series'
    expansion across a DST change, and the local date, depend on the zone.
    """
    recurrence = (event.get("recurrence") or {}).get("range") or {}
    for name in (event.get("originalStartTimeZone"), recurrence.get("recurrenceTimeZone")):
        if name:
            try:
                return iana_zone(str(name))
            except ValueError:
                continue
    return fallback


def _moment(value: Mapping[str, Any], zone: tzinfo) -> datetime:
    """A Graph dateTimeTimeZone, in ``zone``."""
    text = _FRACTION.sub(r"\1", str(value["dateTime"]))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=iana_zone(value.get("timeZone")))
    return moment.astimezone(zone)


def _times(event: Event, zone: tzinfo) -> tuple[date | datetime, date | datetime]:
    if event.get("isAllDay"):
        # Whole days are dates wherever one is: read them as written, never shifted by the zone the
        # request preferred (an all-day event in New York read in UTC would start the day before).
        return _date(event["start"]), _date(event["end"])
    return _moment(event["start"], zone), _moment(event["end"], zone)


def _date(value: Mapping[str, Any]) -> date:
    return date.fromisoformat(str(value["dateTime"])[:10])


def _common(
    vevent: icalendar.Event, event: Event, owner: str, zone: tzinfo, master: Event | None = None
) -> None:
    """What every converted event carries; ``master``: the series an instance belongs to (a stub's busy
    status is its master's)."""
    if "start" in event:
        start, end = _times(event, zone)
        vevent.add("dtstart", start)
        vevent.add("dtend", end)
    if event.get("subject"):
        vevent.add("summary", str(event["subject"]))
    if event.get("isCancelled"):
        vevent.add("status", "CANCELLED")
    if event.get("lastModifiedDateTime"):
        vevent.add(
            "last-modified", datetime.fromisoformat(_FRACTION.sub(r"\1", str(event["lastModifiedDateTime"])))
        )
    show_as = _show_as(event) or (_show_as(master) if master is not None else "")
    if show_as in _SHOW_AS:
        vevent.add(BUSY_STATUS, _SHOW_AS[show_as])
    organizer = _organizer(event)
    if organizer:
        vevent.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
    elif show_as == "oof" and master is None:
        vevent.add("organizer", icalendar.vCalAddress(f"mailto:{owner}"))  # a block is its owner's
    own = (event.get("responseStatus") or {}).get("response")
    for attendee in event.get("attendees") or ():
        address = (attendee.get("emailAddress") or {}).get("address")
        if not address:
            continue
        response = (attendee.get("status") or {}).get("response")
        if str(address).lower() == owner and own:
            response = own  # the mailbox owner's own answer is the authoritative one
        entry = icalendar.vCalAddress(f"mailto:{address}")
        entry.params["PARTSTAT"] = _RESPONSE.get(str(response), "NEEDS-ACTION")
        entry.params["CUTYPE"] = "RESOURCE" if attendee.get("type") == "resource" else "INDIVIDUAL"
        name = (attendee.get("emailAddress") or {}).get("name")
        if name:
            entry.params["CN"] = str(name)
        vevent.add("attendee", entry)


def _master(master: Event, owner: str, listed: Window, default_tz: tzinfo) -> icalendar.Event:
    zone = _zone_of(master, default_tz)
    vevent = icalendar.Event()
    vevent.add("uid", str(master["iCalUId"]))
    _common(vevent, master, owner, zone)
    start = _moment(master["start"], zone)
    vevent["RRULE"] = icalendar.vRecur.from_ical(rrule_for(master["recurrence"], start))
    vevent.add(LISTED_FROM, listed.start.astimezone(UTC).isoformat())
    vevent.add(LISTED_TO, listed.end.astimezone(UTC).isoformat())
    return vevent


def _instance(
    instance: Event, masters: Mapping[str, Event], owner: str, default_tz: tzinfo
) -> icalendar.Event | None:
    kind = instance.get("type", "singleInstance")
    if kind == "seriesMaster":
        return None  # masters come through ``masters``
    if kind == "singleInstance":
        vevent = icalendar.Event()
        vevent.add("uid", str(instance["iCalUId"]))
        _common(vevent, instance, owner, _zone_of(instance, default_tz))
        return vevent
    master = masters.get(str(instance.get("seriesMasterId")))
    if master is None:
        raise ValueError(f"its series master {instance.get('seriesMasterId')!r} was not fetched")
    zone = _zone_of(master, default_tz)
    vevent = icalendar.Event()
    vevent.add("uid", str(master["iCalUId"]))
    original = instance.get("originalStart") or instance["start"]["dateTime"]
    vevent.add("recurrence-id", datetime.fromisoformat(_FRACTION.sub(r"\1", str(original))).astimezone(zone))
    _common(vevent, instance, owner, zone, master)
    return vevent


def _show_as(event: Event) -> str:
    """An event's ``showAs``, lower case ("" when it has none: an occurrence's stub)."""
    return str(event.get("showAs") or "").lower()


def _organizer(event: Event) -> str:
    return str(((event.get("organizer") or {}).get("emailAddress") or {}).get("address") or "")


def _describe(event: Event) -> str:
    subject = event.get("subject")
    ident = event.get("id", "?")
    return f"event {subject!r} (id {ident})" if subject else f"event (id {ident})"


# -- sync --------------------------------------------------------------------------------------------

#: Exchange allows 4 concurrent requests per mailbox (and 10,000 per 10 minutes).
PER_MAILBOX = 4
#: Mailboxes synced at the same time (a source's ``concurrency`` overrides it).
PARALLEL_MAILBOXES = DEFAULT_CONCURRENCY
#: Items per page of the delta answer and of the series masters' listing (a mailbox's 90 days back and
#: 90 ahead, about 30 meetings a week, fit in one page).
PAGE_SIZE = 1000
#: Requests in one JSON batch (Graph's limit).
BATCH_LIMIT = 20
#: The delta span reaches this many days past the sync window, so that it is re-read about monthly.
RELIST_DAYS = 28
#: The delta span is read in this many parts at once (see the module): a full read of a mailbox of up
#: to PARTS x PAGE_SIZE instances is one request instead of one per page.
PARTS = 2
PREFER = f'outlook.timezone="UTC", odata.maxpagesize={PAGE_SIZE}'
#: What a series master is fetched with.
MASTER_FIELDS = (
    "id,type,iCalUId,subject,start,end,originalStartTimeZone,recurrence,organizer,attendees,"
    "responseStatus,isAllDay,isCancelled,lastModifiedDateTime,showAs"
)
#: What a mailbox's state keeps, as ``extra["kept"]``: a state kept by an older rule (before the
#: owner's out-of-office blocks were kept) is read in full once, to bring back what it dropped. A
#: source that ignores people marks its states with the list too (:func:`keep_rule`).
KEEP_RULE = "1:1s+own-oof"
_RETRY_STATUS = {429, 500, 502, 503, 504}
#: People one getSchedule request asks about (Graph's documented limit; it has been seen to take 100).
SCHEDULES_PER_REQUEST = 20
#: The longest span one getSchedule request covers: Graph documents "less than 62 days".
SCHEDULE_DAYS = 61
#: ... and when Graph refuses that as too long (``ErrorTimeIntervalTooBig``): within the availability
#: service's default limit, 42 days (EWS documents it, and that an administrator may change it), however
#: its edge is counted.
SCHEDULE_DAYS_FALLBACK = 41
#: What the free/busy batches are counted against (the rate limiter and the requests in flight).
FREE_BUSY = "free/busy"
#: An absentee's calendar is named ``"<email> (out of office)"`` (as the Google source names theirs).
ABSENCE_SUFFIX = " (out of office)"


def keep_rule(ignored: Callable[[str], bool] = NOBODY) -> str:
    """The marker of the states a source keeps when it does not count the people ``ignored``: what it
    dropped depends on whom it ignored, so a state kept under another ignore list is read in full
    again. :data:`KEEP_RULE` when it ignores nobody (the states kept before ignore lists stay good); an
    :class:`~calsync.detect.Ignored` is marked by a hash of its sorted patterns (as many as the
    patterns are, however written); any other function by its name (what it answers cannot be seen,
    so a change to it is not noticed)."""
    if isinstance(ignored, Ignored):
        if not ignored:
            return KEEP_RULE
        patterns = sorted(ignored.addresses | {f"*@{domain}" for domain in ignored.domains})
    else:
        name = getattr(ignored, "__qualname__", type(ignored).__qualname__)
        patterns = [f"{getattr(ignored, '__module__', '')}.{name}"]
    digest = hashlib.sha256("\n".join(patterns).encode()).hexdigest()[:16]
    return f"{KEEP_RULE}+ignoring:{digest}"


class MailboxUnavailable(Exception):
    """One mailbox could not be synced: reported with its address, the others go on. ``status`` and
    ``code``: Graph's answer, when it gave one."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DeltaExpired(Exception):
    """Graph answered 410: the mailbox's delta state is gone and must be rebuilt with a full read."""


@dataclass(frozen=True, slots=True)
class Call:
    """One request of a JSON batch: its method, absolute URL and JSON body (None: no body)."""

    method: str
    url: str
    body: Any = None


class GraphClient:
    """GET requests to Graph: bearer token, retries with ``Retry-After``, at most :data:`PER_MAILBOX`
    requests in flight per mailbox, and links followed only on Graph's own host."""

    def __init__(
        self,
        session: requests.Session,
        endpoint: str,
        tokens: TokenProvider,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.session = session
        self.endpoint = endpoint.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RateLimiter(per_minute=1000)  # 10,000 per 10 minutes per mailbox
        self.requests = 0
        self._origin = urllib.parse.urlsplit(self.endpoint)[:2]
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def url(self, *segments: str) -> str:
        return self.endpoint + "".join("/" + urllib.parse.quote(s, safe="@") for s in segments)

    @contextlib.contextmanager
    def _slot(self, mailbox: str) -> Iterator[None]:
        with self._lock:
            slot = self._slots.setdefault(mailbox, threading.BoundedSemaphore(PER_MAILBOX))
        with slot:
            yield

    def get(self, url: str, mailbox: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One GET, retried when retrying can help; 410 raises :class:`DeltaExpired`, anything else
        that fails raises :class:`MailboxUnavailable` saying why."""
        return _json(self.send("GET", url, mailbox, params=params))

    def send(
        self,
        method: str,
        url: str,
        mailbox: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request, retried when retrying can help (throttling, 5xx, a dropped connection; every
        request calsync sends is safe to repeat: writes carry If-Match or fail on conflict). Returns
        the 2xx response; 410 raises :class:`DeltaExpired`, other failures :class:`MailboxUnavailable`
        with the status (412 and 409 included, for the caller to handle)."""
        if urllib.parse.urlsplit(url)[:2] != self._origin:
            raise MailboxUnavailable(
                f"Graph sent a link to another host ({urllib.parse.urlsplit(url).netloc})"
            )
        stale: str | None = None
        refreshed = False
        last = ""
        for attempt in range(self.retry.attempts):
            self.limiter.acquire(mailbox)
            try:
                token = self.tokens.token(stale)
            except AuthError as exc:
                if not exc.transient:
                    raise MailboxUnavailable(str(exc)) from exc
                last = str(exc)
                if attempt + 1 < self.retry.attempts:
                    self.retry.sleep(self.retry.delay(attempt, None))
                continue
            sent = {"Authorization": f"Bearer {token}", "Prefer": PREFER, "Accept": "application/json"}
            sent.update(headers or {})
            retry_after: float | None = None
            try:
                with self._slot(mailbox):
                    with self._lock:
                        self.requests += 1
                    response = self.session.request(
                        method,
                        url,
                        params=params,
                        json=json,
                        data=data,
                        headers=sent,
                        timeout=self.timeout,
                    )
            except requests.exceptions.SSLError as exc:
                REQUESTS.record(MICROSOFT, error=True)
                raise MailboxUnavailable(
                    f"the TLS certificate of {self._origin[1]} was not trusted ({exc}); set ca_bundle if a "
                    "proxy or a private CA stands in between"
                ) from exc
            except requests.RequestException as exc:
                REQUESTS.record(MICROSOFT, error=True)
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                REQUESTS.record(MICROSOFT, error=not 200 <= status < 300)
                if 200 <= status < 300:
                    return response
                code, message = _error(response)
                if status == 401 and not refreshed:
                    stale, refreshed = token, True  # the token expired or was revoked: get a new one
                    continue
                if status == 410:
                    raise DeltaExpired(f"{code or 'HTTP 410'}: {message}".strip(": "))
                if status not in _RETRY_STATUS:
                    raise MailboxUnavailable(_explain(status, code, message), status, code)
                retry_after = _retry_after(response) if status in (429, 503) else None
                last = f"HTTP {status} {code or message}".strip()
            if attempt + 1 < self.retry.attempts:
                self.retry.sleep(self.retry.delay(attempt, retry_after))
        raise MailboxUnavailable(f"gave up after {self.retry.attempts} attempts; last: {last}")

    def batch(self, urls: list[str], mailbox: str) -> list[dict[str, Any]]:
        """Several GETs about one mailbox in one round trip (Graph's JSON batching, at most
        :data:`BATCH_LIMIT`); their answers, in order. An inner request that was throttled or failed
        on the way is sent again on its own (after its ``Retry-After``); 410 raises
        :class:`DeltaExpired`, other failures :class:`MailboxUnavailable`, as :meth:`get` does."""
        answers = self.batch_calls([Call("GET", url) for url in urls], mailbox, strict=True)
        return [answer for answer in answers if isinstance(answer, dict)]

    def batch_calls(
        self, calls: list[Call], key: str, *, strict: bool = False
    ) -> list[dict[str, Any] | MailboxUnavailable | DeltaExpired]:
        """Several requests in one round trip (at most :data:`BATCH_LIMIT`), counted against ``key``;
        each one's JSON answer, or the exception it failed with (``strict``: the first failure is
        raised, the requests after it are not retried). An inner request that was throttled or failed on
        the way is sent again on its own (after its ``Retry-After``), with its own retries."""
        if not calls:
            return []
        if len(calls) > BATCH_LIMIT:
            raise ValueError(f"a Graph batch holds at most {BATCH_LIMIT} requests")
        inner = []
        for index, call in enumerate(calls):
            if not call.url.startswith(self.endpoint + "/"):
                raise MailboxUnavailable(f"cannot batch a request outside the Graph endpoint: {call.url}")
            request: dict[str, Any] = {
                "id": str(index),
                "method": call.method,
                "url": call.url[len(self.endpoint) :],
                "headers": {"Prefer": PREFER},
            }
            if call.body is not None:
                request["body"] = call.body
                request["headers"]["Content-Type"] = "application/json"
            inner.append(request)
        answer = _json(self.send("POST", self.endpoint + "/$batch", key, json={"requests": inner}))
        responses = answer.get("responses")
        by_id = (
            {str(r.get("id")): r for r in responses or () if isinstance(r, dict)}
            if isinstance(responses, list)
            else {}
        )
        results: list[dict[str, Any] | MailboxUnavailable | DeltaExpired] = []
        for index, call in enumerate(calls):
            try:
                results.append(self._inner_answer(call, key, by_id.get(str(index))))
            except (MailboxUnavailable, DeltaExpired) as exc:
                if strict:
                    raise
                results.append(exc)
        return results

    def _inner_answer(self, call: Call, key: str, response: dict[str, Any] | None) -> dict[str, Any]:
        """One request's answer in a batch's: its body, else (throttled, 5xx, 401) its answer when sent
        again alone; raises what :meth:`send` would."""
        if response is None:
            raise MailboxUnavailable("Graph's batch answer lacks the answer to one of its requests")
        status = int(response.get("status") or 0)
        body = response.get("body")
        if 200 <= status < 300 and isinstance(body, dict):
            return body
        error = (body or {}).get("error") if isinstance(body, dict) else None
        code = str((error or {}).get("code") or "")
        message = str((error or {}).get("message") or "")
        if status == 410:
            raise DeltaExpired(f"{code or 'HTTP 410'}: {message}".strip(": "))
        if status in _RETRY_STATUS or status == 401:
            headers = {str(k).lower(): v for k, v in (response.get("headers") or {}).items()}
            wait = _seconds(headers.get("retry-after"))
            if wait:
                self.retry.sleep(self.retry.delay(0, wait))
            return _json(self.send(call.method, call.url, key, json=call.body))  # alone, own retries
        raise MailboxUnavailable(_explain(status, code, message), status, code)


def _seconds(value: object) -> float | None:
    try:
        return max(0.0, float(str(value))) if value is not None else None
    except ValueError:
        return None


def _json(response: requests.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise MailboxUnavailable(f"Graph answered {response.status_code} where 200 was expected")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise MailboxUnavailable("Graph answered 200 with something that is not a JSON object")
    return body


def _error(response: requests.Response) -> tuple[str, str]:
    """Graph's error envelope: ``{"error": {"code": ..., "message": ...}}``."""
    try:
        error = response.json().get("error") or {}
        return str(error.get("code") or ""), str(error.get("message") or "")
    except (ValueError, AttributeError):
        return "", ""


def _retry_after(response: requests.Response) -> float | None:
    return _seconds(response.headers.get("Retry-After"))


def _explain(status: int, code: str, message: str) -> str:
    hint = {
        401: "the token was refused",
        403: "no access to this mailbox: the app needs admin consent for Calendars.Read, and the "
        "mailbox must be in its Exchange RBAC scope",
        404: "no such mailbox, or it has no Exchange Online calendar",
    }.get(status, "")
    detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    return f"{hint} ({detail})" if hint else detail


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spans(window: Window, days: int) -> list[Window]:
    """``window`` cut into consecutive spans of at most ``days`` days."""
    spans, start = [], window.start
    while start < window.end:
        end = min(start + timedelta(days=days), window.end)
        spans.append(Window(start, end))
        start = end
    return spans


def _batches(
    calls: list[tuple[list[str], Window]], askers: list[str]
) -> Iterator[list[tuple[list[str], Window, str]]]:
    """The free/busy requests in batches of at most :data:`BATCH_LIMIT`, at most :data:`PER_MAILBOX`
    of them asked through one mailbox of ``askers`` (Graph runs a batch's requests at once, and
    throttles a mailbox's fifth), the mailboxes taking turns (as few as there are requests for)."""
    batch: list[tuple[list[str], Window, str]] = []
    through: dict[str, int] = {}
    for index, (group, span) in enumerate(calls):
        asker = askers[index // PER_MAILBOX % len(askers)]
        if len(batch) == BATCH_LIMIT or through.get(asker, 0) == PER_MAILBOX:
            yield batch
            batch, through = [], {}
        batch.append((group, span, asker))
        through[asker] = through.get(asker, 0) + 1
    if batch:
        yield batch


def _when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def _schedule_body(people: list[str], span: Window) -> dict[str, Any]:
    """A getSchedule request: the people, the span in UTC, and one slot a day in ``availabilityView``
    (calsync reads the items, not the view: the smallest view keeps the answer small)."""
    return {
        "schedules": people,
        "startTime": _when(span.start),
        "endTime": _when(span.end),
        "availabilityViewInterval": 1440,
    }


def _take_schedules(
    answer: dict[str, Any],
    people: list[str],
    blocks: dict[str, set[tuple[datetime, datetime]]],
    failed: dict[str, str],
) -> None:
    """One getSchedule answer: each person's out-of-office items into ``blocks``, or why not into
    ``failed`` (Graph's per-schedule ``error``, an answer without them, an item that cannot be read)."""
    values = answer.get("value")
    if not isinstance(values, list):
        for person in people:
            failed.setdefault(person, "Graph's free/busy answer has no list of schedules ('value')")
        return
    infos = [v for v in values if isinstance(v, dict)]
    by_id = {str(v.get("scheduleId") or "").lower(): v for v in infos}
    for index, person in enumerate(people):
        info = by_id.get(person)
        if info is None and len(infos) == len(people) and not infos[index].get("scheduleId"):
            info = infos[index]  # answers come in the order asked
        if info is None:
            failed.setdefault(person, "Graph's free/busy answer does not include them")
            continue
        error = info.get("error")
        if isinstance(error, dict) and (error.get("message") or error.get("responseCode")):
            code = error.get("responseCode")
            failed.setdefault(
                person, str(error.get("message") or "an error") + (f" (response code {code})" if code else "")
            )
            continue
        for item in info.get("scheduleItems") or ():
            if not isinstance(item, dict) or str(item.get("status") or "").lower() != "oof":
                continue
            try:
                blocks[person].add((_moment(item["start"], UTC), _moment(item["end"], UTC)))
            except (KeyError, TypeError, ValueError) as exc:
                failed.setdefault(person, f"an out-of-office item of theirs cannot be read ({exc!r})")


class MicrosoftSource:
    """Microsoft 365 calendars: each mailbox's calendarView, kept up to date with delta queries, and
    the out-of-office of ``absentees`` (people whose mailboxes are not read) from their free/busy.
    ``ignored`` people (``[detect] ignore_attendees``) do not count when deciding which events could
    be 1:1s and are kept."""

    def __init__(
        self,
        name: str,
        mailboxes: Iterable[str],
        client: GraphClient,
        store: StateStore,
        *,
        default_tz: tzinfo,
        parallel: int = PARALLEL_MAILBOXES,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        reads: ReadCache | None = None,
        parts: int = PARTS,
        absentees: Iterable[str] = (),
        ignored: Callable[[str], bool] = NOBODY,
    ) -> None:
        self.name = name
        self.ignored = ignored
        #: The marker of the states this source keeps (see :func:`keep_rule`).
        self.kept = keep_rule(ignored)
        self.stop = stop
        self.parts = max(1, min(parts, BATCH_LIMIT - 1))
        self.mailboxes = list(dict.fromkeys(m.lower() for m in mailboxes))
        read = set(self.mailboxes)
        #: People whose out-of-office is read from their free/busy: a mailbox read shows its own.
        self.absentees = [
            a for a in dict.fromkeys(a.strip().lower() for a in absentees) if a and a not in read
        ]
        self.client = client
        self.store = store
        self.default_tz = default_tz
        self.parallel = max(1, parallel)
        self.reads = reads
        self.progress: Progress = progress if progress is not None else NoProgress()
        #: How many days one free/busy request covers (see :data:`SCHEDULE_DAYS`).
        self.schedule_days = SCHEDULE_DAYS

    def fetch(self, window: Window) -> SourceResult:
        result = read_concurrently(
            self.name,
            self.mailboxes,
            lambda mailbox: self._read_one(mailbox, window),
            workers=self.parallel,
            progress=self.progress,
            reads=self.reads,
        )
        if self.absentees:
            # asked through mailboxes that could be read just now (any, if none could)
            asking = [c.calendar for c in result.calendars if c.stored_at is None] or self.mailboxes
            absent = self.read_absentees(window, asking)
            result.calendars.extend(absent.calendars)
            result.problems.extend(absent.problems)
        return result

    def _read_one(self, mailbox: str, window: Window) -> Reading:
        check(self.stop)
        try:
            state = self.sync(mailbox, self.store.load(self.name, mailbox), window)
        except MailboxUnavailable as exc:
            return self._stored_instead(mailbox, window, exc)
        self.store.save(self.name, state)
        return self._reading(state, mailbox, window)

    def _reading(
        self, state: CalendarState, mailbox: str, window: Window
    ) -> tuple[CalendarData, list[Problem]]:
        """A state's reading (kept in the daemon's ReadCache by revision)."""
        return cached_reading(
            self.reads,
            self.name,
            mailbox,
            (state.revision, window),
            lambda: graph_calendar_data(
                state.events.values(),
                state.extra["masters"],
                mailbox,
                _listed(state),
                window,
                self.default_tz,
            ),
        )

    def _stored_instead(self, mailbox: str, window: Window, exc: Exception) -> Reading:
        """A mailbox that could not be synced now: its stored reading, with a problem saying so; without
        one, a problem that it could not be read (its meetings are unknown)."""
        source = f"{self.name}: {mailbox}"
        state = self.store.load(self.name, mailbox)  # as stored: a failed sync may have changed its copy
        if state is None or not _readable(state):
            return None, [Problem(source, str(exc), unread=True, owner=mailbox)]
        data, problems = self._reading(state, mailbox, window)
        problem = Problem(
            source,
            f"could not be read now ({exc}); judged from calsync's stored reading of it, "
            + (f"last synced {state.synced_at}" if state.synced_at else "synced at a time not recorded"),
            owner=mailbox,
        )
        return replace(data, stored_at=state.synced_at or ""), [problem, *problems]

    # -- absentees: their out-of-office from their free/busy ----------------------------------------

    def read_absentees(self, window: Window, asking: Iterable[str]) -> SourceResult:
        """The out-of-office blocks of :attr:`absentees` over ``window``: ``getSchedule`` asked through
        the mailboxes ``asking`` (the caller's own calendar is the door to others' free/busy),
        :data:`SCHEDULES_PER_REQUEST` people and at most :attr:`schedule_days` a request, the requests
        in JSON batches. Each person read is a calendar of no meetings with their absences; each one
        Graph could not tell about is a problem of theirs (never a calendar)."""
        result = SourceResult()
        askers = list(dict.fromkeys(asking))
        if not askers:
            for person in self.absentees:
                result.problems.append(
                    self._absentee_problem(person, "the source has no mailbox to ask for free/busy through")
                )
            return result
        while True:
            blocks, failed, too_long = self._schedules(window, askers, self.schedule_days)
            if not too_long or self.schedule_days <= SCHEDULE_DAYS_FALLBACK:
                break
            self.schedule_days = SCHEDULE_DAYS_FALLBACK  # this tenant's limit is lower: ask for less
        for person in self.absentees:
            if person in failed:
                result.problems.append(self._absentee_problem(person, failed[person]))
                continue
            label = person + ABSENCE_SUFFIX
            absences = tuple(
                Absence(person, start, end, False, label) for start, end in sorted(blocks[person])
            )
            result.calendars.append(CalendarData(label, absences=absences, owner=person, absences_only=True))
        return result

    def _absentee_problem(self, person: str, why: str) -> Problem:
        return Problem(
            f"{self.name}: {person}{ABSENCE_SUFFIX}",
            f"could not read the out-of-office of {person} from their free/busy ({why}): their absences are "
            "not known (their 1:1s are still read from their managers' calendars)",
            owner=person,
        )

    def _schedules(
        self, window: Window, askers: list[str], days: int
    ) -> tuple[dict[str, set[tuple[datetime, datetime]]], dict[str, str], bool]:
        """Every absentee's out-of-office blocks (start, end), why those who could not be read could not
        be, and whether Graph refused a request's span as too long."""
        groups = [
            self.absentees[i : i + SCHEDULES_PER_REQUEST]
            for i in range(0, len(self.absentees), SCHEDULES_PER_REQUEST)
        ]
        calls = [(group, span) for span in _spans(window, days) for group in groups]
        blocks: dict[str, set[tuple[datetime, datetime]]] = {person: set() for person in self.absentees}
        failed: dict[str, str] = {}
        too_long = False
        for batch in _batches(calls, askers):
            check(self.stop)
            requests = [
                Call("POST", self.client.url("users", asker, "calendar", "getSchedule"), _schedule_body(g, s))
                for g, s, asker in batch
            ]
            answers: list[dict[str, Any] | MailboxUnavailable | DeltaExpired]
            try:
                answers = self.client.batch_calls(requests, FREE_BUSY)
            except (MailboxUnavailable, DeltaExpired) as exc:  # the batch itself failed
                answers = [exc] * len(batch)
            for (group, _span, _asker), answer in zip(batch, answers, strict=True):
                if isinstance(answer, Exception):
                    if isinstance(answer, MailboxUnavailable) and answer.code == "ErrorTimeIntervalTooBig":
                        too_long = True
                    for person in group:
                        failed.setdefault(person, str(answer))
                    continue
                _take_schedules(answer, group, blocks, failed)
        return blocks, failed, too_long

    def sync(self, mailbox: str, state: CalendarState | None, window: Window) -> CalendarState:
        """Bring one mailbox's state up to date: incrementally when its delta link still covers the
        window, else with a full read. Never touches the store (it runs in a worker thread)."""
        check(self.stop)
        links = _links(state.cursor) if state is not None else []
        if (
            state is not None
            and links
            and "masters" in state.extra
            and state.extra.get("kept") == self.kept
            and _covers(state, window)
        ):
            parts = _parts(_listed(state), len(links))
            try:
                rounds = self._rounds(mailbox, links) if len(parts) == len(links) else None
            except DeltaExpired:
                rounds = None  # Graph lost the sync state: read the mailbox again
            if rounds is not None:
                state.extra.setdefault("ignored", [])
                changed: set[str] = set()
                for (items, _link), part in zip(rounds, parts, strict=True):
                    changed |= _merge(state.events, items, part)
                changed -= _drop_ignored(state, self.ignored)
                state.cursor = _cursor([link for _items, link in rounds])
                fetched = self._refresh_masters(mailbox, state, changed)
                dropped = _keep_possible(state, self.ignored)
                if any(items for items, _link in rounds) or fetched or dropped or state.revision is None:
                    state.revision = new_revision()  # see CalendarState.revision
                return state
        listed = Window(window.start, window.end + timedelta(days=RELIST_DAYS))
        read, found = self._full_read(mailbox, listed)
        state = CalendarState(
            mailbox,
            _cursor([link for _items, link in read]),
            "UTC",
            {},
            {"listed": [_z(listed.start), _z(listed.end)], "masters": {}, "ignored": [], "kept": self.kept},
            revision=new_revision(),
        )
        changed = set()
        for items, _link in read:
            changed |= _merge(state.events, items)
        needed = _series(state)
        state.extra["masters"].update((str(m["id"]), _lean(m)) for m in found if str(m.get("id")) in needed)
        self._refresh_masters(mailbox, state, changed - needed)  # fetches only what the listing lacked
        _keep_possible(state, self.ignored)
        return state

    def _full_read(
        self, mailbox: str, listed: Window
    ) -> tuple[list[tuple[list[dict[str, Any]], str]], list[dict[str, Any]]]:
        """Every part of the view over ``listed`` (its items and deltaLink) and the series masters: the
        parts' first pages and the masters' listing in one ``$batch``, then any further pages."""
        delta = self.client.url("users", mailbox, "calendarView", "delta")
        masters = self.client.url("users", mailbox, "events")
        masters_query = {
            "$filter": "type eq 'seriesMaster'",
            "$select": MASTER_FIELDS,
            "$top": str(PAGE_SIZE),
        }
        views = [
            _with_query(delta, {"startDateTime": _z(part.start), "endDateTime": _z(part.end)})
            for part in _parts(listed, self.parts)
        ]
        try:
            *firsts, listing = self.client.batch([*views, _with_query(masters, masters_query)], mailbox)
            rounds = [
                self._round(mailbox, view, None, first) for view, first in zip(views, firsts, strict=True)
            ]
            found = _listing(self.client, mailbox, listing, "the series masters", "events")
        except DeltaExpired as exc:
            raise MailboxUnavailable(f"the full read was refused as expired ({exc})") from exc
        return rounds, found

    def _rounds(self, mailbox: str, links: list[str]) -> list[tuple[list[dict[str, Any]], str]]:
        """One delta round of each part: a single link is a GET, several go in one ``$batch``."""
        if len(links) == 1:
            return [self._round(mailbox, links[0], None)]
        firsts = self.client.batch(links, mailbox)
        return [self._round(mailbox, link, None, first) for link, first in zip(links, firsts, strict=True)]

    def _round(
        self, mailbox: str, url: str, params: Mapping[str, str] | None, page: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Every page of one delta round (from ``page`` when the first is already there): the items,
        and the deltaLink for the next round."""
        items: list[dict[str, Any]] = []
        while True:
            if page is None:
                page = self.client.get(url, mailbox, params)
            values = page.get("value")
            if not isinstance(values, list):
                raise MailboxUnavailable("a page of the delta answer has no list of events ('value')")
            items.extend(item for item in values if isinstance(item, dict))
            if page.get("@odata.nextLink"):
                url, params, page = str(page["@odata.nextLink"]), None, None
                continue
            if page.get("@odata.deltaLink"):
                return items, str(page["@odata.deltaLink"])
            raise MailboxUnavailable("a page of the delta answer has neither a nextLink nor a deltaLink")

    def _refresh_masters(self, mailbox: str, state: CalendarState, changed: set[str]) -> bool:
        """Fetch the masters of series that changed or are new; forget those no instance needs. Whether
        it changed the state."""
        masters: dict[str, Any] = state.extra["masters"]
        ignored = set(state.extra.get("ignored") or ())
        needed = _series(state)
        unneeded = [ident for ident in masters if ident not in needed]
        for ident in unneeded:
            del masters[ident]
        wanted = sorted((changed & needed) | (needed - masters.keys() - ignored))
        if wanted:

            def fetch(ident: str) -> tuple[str, dict[str, Any] | None]:
                url = self.client.url("users", mailbox, "events", ident)
                try:
                    return ident, self.client.get(url, mailbox, {"$select": MASTER_FIELDS})
                except MailboxUnavailable as exc:
                    if exc.status == 404:
                        return ident, None  # the series was deleted since: its instances go too
                    raise

            with ThreadPoolExecutor(max_workers=PER_MAILBOX, thread_name_prefix="graph-master") as pool:
                fetched = list(pool.map(fetch, wanted))
            for ident, master in fetched:
                ignored.discard(ident)
                if master is None:
                    masters.pop(ident, None)
                    for key in [k for k, e in state.events.items() if e.get("seriesMasterId") == ident]:
                        del state.events[key]
                else:
                    masters[ident] = _lean(master)
        state.extra["ignored"] = sorted(ignored)
        return bool(unneeded or wanted)


def _listing(
    client: GraphClient, key: str, page: dict[str, Any], what: str, kind: str
) -> list[dict[str, Any]]:
    """Every item of a listing whose first page is ``page``, following ``@odata.nextLink`` (requests
    counted against ``key``); ``what`` and ``kind`` name the listing and its items in errors."""
    items: list[dict[str, Any]] = []
    while True:
        values = page.get("value")
        if not isinstance(values, list):
            raise MailboxUnavailable(f"a page of {what} has no list of {kind} ('value')")
        items.extend(item for item in values if isinstance(item, dict))
        if not page.get("@odata.nextLink"):
            return items
        page = client.get(str(page["@odata.nextLink"]), key)


def _with_query(url: str, query: Mapping[str, str]) -> str:
    return url + "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)


def _series(state: CalendarState) -> set[str]:
    """The series masters the stored instances belong to."""
    return {str(e["seriesMasterId"]) for e in state.events.values() if e.get("seriesMasterId")}


def possible(event: Event, ignored: Callable[[str], bool] = NOBODY) -> bool:
    """Whether an event (a series master or a single instance) could be a 1:1: timed, and two people,
    organizer included (rooms and resources are not people, nor are the people ``ignored``: an
    assistant who organises it, a note-taking bot)."""
    if event.get("isAllDay"):
        return False
    people = {
        str(address).lower()
        for attendee in event.get("attendees") or ()
        if attendee.get("type") != "resource"
        and (address := (attendee.get("emailAddress") or {}).get("address"))
    }
    organizer = _organizer(event)
    if organizer:
        people.add(organizer.lower())
    return len({person for person in people if not ignored(person)}) == 2


def own_block(event: Event, owner: str) -> bool:
    """Whether an event is an out-of-office block of the mailbox's owner: ``showAs`` oof, organised by
    them (an invitation to someone else's block is not their absence)."""
    organizer = _organizer(event)
    return _show_as(event) == "oof" and (not organizer or organizer.lower() == owner.lower())


def _wanted(event: Event, owner: str, ignored: Callable[[str], bool] = NOBODY) -> bool:
    """Whether a mailbox's state keeps an event (a series master or a single instance)."""
    return possible(event, ignored) or own_block(event, owner)


def _keep_possible(state: CalendarState, ignored: Callable[[str], bool] = NOBODY) -> bool:
    """Keep what could count: single instances that could be a 1:1 (the people ``ignored`` not
    counted) or are the owner's out-of-office, and every instance of a series whose master is either
    (the others' masters are remembered as ignored, so that they are not fetched again until their
    series changes). A later change to any of them arrives whole. Whether it dropped anything."""
    owner = state.calendar.lower()
    masters: dict[str, Any] = state.extra["masters"]
    skipped = set(state.extra.get("ignored") or ())  # the series not kept
    before = len(masters) + len(state.events)
    for ident, master in list(masters.items()):
        if not _wanted(master, owner, ignored):
            del masters[ident]
            skipped.add(ident)
    for key, event in list(state.events.items()):
        series = event.get("seriesMasterId")
        if series:
            if str(series) not in masters:
                del state.events[key]
        elif not _wanted(event, owner, ignored):
            del state.events[key]
    state.extra["ignored"] = sorted(skipped)
    return len(masters) + len(state.events) != before


def _drop_ignored(state: CalendarState, ignored: Callable[[str], bool] = NOBODY) -> set[str]:
    """Drop the instances a delta round brought of series known not to be kept, unless the instance
    itself could now be (the people ``ignored`` not counted; then its master is fetched again and
    judged anew); the series dropped."""
    owner = state.calendar.lower()
    skipped = set(state.extra.get("ignored") or ())  # the series not kept
    dropped: set[str] = set()
    for key, event in list(state.events.items()):
        series = str(event.get("seriesMasterId") or "")
        if series in skipped and "attendees" in event and not _wanted(event, owner, ignored):
            del state.events[key]
            dropped.add(series)
    return dropped - _series(state)


def _merge(
    events: dict[str, dict[str, Any]], items: Iterable[dict[str, Any]], part: Window | None = None
) -> set[str]:
    """Apply one delta round (of the span ``part``) to the stored instances; the series whose instances
    changed. A removal leaves an instance that is stored at times outside ``part``: it moved to another
    part, whose round added it already."""
    changed: set[str] = set()
    for item in items:
        ident = item.get("id")
        if not ident:
            continue
        if "@removed" in item:
            stored = events.get(str(ident))
            if stored is not None and part is not None and _outside(stored, part):
                continue
            removed = events.pop(str(ident), None)
            if removed is not None and removed.get("seriesMasterId"):
                changed.add(str(removed["seriesMasterId"]))
            continue
        events[str(ident)] = _lean(item)
        if item.get("seriesMasterId"):
            changed.add(str(item["seriesMasterId"]))
    return changed


#: What is kept of an event: what its reading needs (bodies, links, etags and the like are not kept).
_KEPT = (
    "id",
    "type",
    "seriesMasterId",
    "iCalUId",
    "subject",
    "start",
    "end",
    "originalStart",
    "originalStartTimeZone",
    "isAllDay",
    "isCancelled",
    "lastModifiedDateTime",
    "organizer",
    "responseStatus",
    "recurrence",
    "showAs",
)


def _lean(item: Mapping[str, Any]) -> dict[str, Any]:
    """An event as it is kept: what its reading needs, and of its attendees their address, answer and
    type."""
    kept = {key: item[key] for key in _KEPT if key in item}
    if "attendees" in item:
        kept["attendees"] = [
            {
                "emailAddress": {"address": (a.get("emailAddress") or {}).get("address")},
                "status": {"response": (a.get("status") or {}).get("response")},
                "type": a.get("type"),
            }
            for a in item.get("attendees") or ()
            if isinstance(a, Mapping)
        ]
    return kept


def _outside(event: Event, part: Window) -> bool:
    """Whether an instance's times lie wholly outside ``part`` (False when they cannot be read)."""
    try:
        start, end = _moment(event["start"], UTC), _moment(event["end"], UTC)
    except (KeyError, TypeError, ValueError):
        return False
    return start >= part.end or max(start, end) <= part.start


def _parts(listed: Window, count: int) -> list[Window]:
    """``listed`` cut into ``count`` consecutive parts of whole days (fewer for a span of fewer days)."""
    days = max(1, (listed.end - listed.start).days)
    count = max(1, min(count, days))
    edges = [listed.start + timedelta(days=days * i // count) for i in range(count)] + [listed.end]
    return [Window(start, end) for start, end in itertools.pairwise(edges)]


def _links(cursor: str | None) -> list[str]:
    """The deltaLinks a state's cursor holds, one per part: a link, or a JSON list of links (none when
    the cursor is missing or unreadable: the mailbox is then read in full)."""
    if not cursor:
        return []
    if not cursor.startswith("["):
        return [cursor]
    try:
        links = json.loads(cursor)
    except ValueError:
        return []
    if not isinstance(links, list) or not links or not all(isinstance(x, str) and x for x in links):
        return []
    return links


def _cursor(links: list[str]) -> str:
    return links[0] if len(links) == 1 else json.dumps(links)


def _readable(state: CalendarState) -> bool:
    """Whether a stored state can be read (a state this module wrote: its masters and listed span)."""
    if not isinstance(state.extra.get("masters"), dict):
        return False
    try:
        _listed(state)
    except (KeyError, ValueError, TypeError):
        return False
    return True


def stored_calendars(
    store: StateStore, source_name: str, mailboxes: Iterable[str], window: Window, default_tz: tzinfo
) -> list[CalendarData]:
    """The stored readings of those ``mailboxes`` of a source that have a state, each with
    ``stored_at``: what the pipeline reports from when the source cannot be read at all (it cannot
    sign in). What reading them finds wrong was reported when they were read."""
    found = []
    for mailbox in dict.fromkeys(m.lower() for m in mailboxes):
        state = store.load(source_name, mailbox)
        if state is None or not _readable(state):
            continue
        data, _problems = graph_calendar_data(
            state.events.values(), state.extra["masters"], mailbox, _listed(state), window, default_tz
        )
        found.append(replace(data, stored_at=state.synced_at or ""))
    return found


def _listed(state: CalendarState) -> Window:
    start, end = state.extra["listed"]
    return Window(datetime.fromisoformat(start), datetime.fromisoformat(end))


def _covers(state: CalendarState, window: Window) -> bool:
    try:
        listed = _listed(state)
    except (KeyError, ValueError, TypeError):
        return False
    return listed.start <= window.start and window.end <= listed.end


# -- the org chart from Microsoft Entra ID -----------------------------------------------------------

USER_FIELDS = "id,displayName,mail,userPrincipalName,accountEnabled"


def graph_users(client: GraphClient) -> list[dict[str, Any]]:
    """Every user of the tenant with their manager (``/users?$expand=manager``, all pages)."""
    params = {
        "$select": USER_FIELDS,
        "$expand": "manager($select=id,mail,userPrincipalName)",
        "$top": "999",
    }
    first = client.get(client.url("users"), "directory", params)
    return _listing(client, "directory", first, "users", "users")


def _address(user: Mapping[str, Any]) -> str:
    return str(user.get("mail") or user.get("userPrincipalName") or "")


def graph_roster_csv(users: Iterable[Mapping[str, Any]]) -> str:
    """The roster CSV the org chart stands for: enabled users with an address, and their managers.

    Going through the CSV means the org chart gets exactly the roster's checks (unknown managers,
    duplicates, cycles)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "manager_email"])
    for user in users:
        if user.get("accountEnabled") is False or not _address(user):
            continue
        manager = user.get("manager") or {}
        writer.writerow([_address(user), user.get("displayName") or "", _address(manager)])
    return out.getvalue()


def graph_client(
    config: MicrosoftSourceConfig, scopes: Iterable[str] = DELEGATED_SCOPES, **options: Any
) -> GraphClient:
    """The Graph client a ``type = "microsoft"`` source reads with (signs in on creation); ``scopes``
    are those of one person's sign-in (the app has what it was granted)."""
    session = session_for(config)
    return GraphClient(
        session,
        config.graph_endpoint,
        token_provider(config, session, scopes),
        timeout=config.timeout_seconds,
        **options,
    )
