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
  attendees are rooms; ``isAllDay`` events are whole days.

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
its series. Only what could be a 1:1 is kept: single instances of two people, and the
instances of series whose master has two people (the others' masters are remembered as ignored).
When Graph answers 410 (``SyncStateNotFound``) or the report
window has moved past the span, the mailbox's state is dropped and read in full again.
Requests carry ``Prefer: outlook.timezone="UTC"`` and ``odata.maxpagesize``; 429 and 503 are retried
after their ``Retry-After``, other 5xx and network errors with backoff, never more than
:data:`PER_MAILBOX` at once per mailbox (Exchange's limit).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import icalendar
import requests

from calsync.config import DEFAULT_CONCURRENCY, MicrosoftSourceConfig
from calsync.model import CalendarData, Problem
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
    return read_converted(items, convert, lambda item: _describe(item[1]), mailbox, window, default_tz)


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


def _common(vevent: icalendar.Event, event: Event, owner: str, zone: tzinfo) -> None:
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
    organizer = ((event.get("organizer") or {}).get("emailAddress") or {}).get("address")
    if organizer:
        vevent.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
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
    _common(vevent, instance, owner, zone)
    return vevent


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
    "responseStatus,isAllDay,isCancelled,lastModifiedDateTime"
)
_RETRY_STATUS = {429, 500, 502, 503, 504}


class MailboxUnavailable(Exception):
    """One mailbox could not be synced: reported with its address, the others go on."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DeltaExpired(Exception):
    """Graph answered 410: the mailbox's delta state is gone and must be rebuilt with a full read."""


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
                    raise MailboxUnavailable(_explain(status, code, message), status)
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
        if not urls:
            return []
        if len(urls) > BATCH_LIMIT:
            raise ValueError(f"a Graph batch holds at most {BATCH_LIMIT} requests")
        inner = []
        for index, url in enumerate(urls):
            if not url.startswith(self.endpoint + "/"):
                raise MailboxUnavailable(f"cannot batch a request outside the Graph endpoint: {url}")
            inner.append(
                {
                    "id": str(index),
                    "method": "GET",
                    "url": url[len(self.endpoint) :],
                    "headers": {"Prefer": PREFER},
                }
            )
        answer = _json(self.send("POST", self.endpoint + "/$batch", mailbox, json={"requests": inner}))
        responses = answer.get("responses")
        by_id = (
            {str(r.get("id")): r for r in responses or () if isinstance(r, dict)}
            if isinstance(responses, list)
            else {}
        )
        results: list[dict[str, Any]] = []
        for index, url in enumerate(urls):
            response = by_id.get(str(index))
            if response is None:
                raise MailboxUnavailable("Graph's batch answer lacks the answer to one of its requests")
            status = int(response.get("status") or 0)
            body = response.get("body")
            if 200 <= status < 300 and isinstance(body, dict):
                results.append(body)
                continue
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
                results.append(self.get(url, mailbox))  # on its own, with its own retries
                continue
            raise MailboxUnavailable(_explain(status, code, message), status)
        return results


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


class MicrosoftSource:
    """Microsoft 365 calendars: each mailbox's calendarView, kept up to date with delta queries."""

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
    ) -> None:
        self.name = name
        self.stop = stop
        self.parts = max(1, min(parts, BATCH_LIMIT - 1))
        self.mailboxes = list(dict.fromkeys(m.lower() for m in mailboxes))
        self.client = client
        self.store = store
        self.default_tz = default_tz
        self.parallel = max(1, parallel)
        self.reads = reads
        self.progress: Progress = progress if progress is not None else NoProgress()

    def fetch(self, window: Window) -> SourceResult:
        return read_concurrently(
            self.name,
            self.mailboxes,
            lambda mailbox: self._read_one(mailbox, window),
            workers=self.parallel,
            progress=self.progress,
            reads=self.reads,
        )

    def _read_one(self, mailbox: str, window: Window) -> Reading:
        check(self.stop)
        try:
            state = self.sync(mailbox, self.store.load(self.name, mailbox), window)
        except MailboxUnavailable as exc:
            return None, [Problem(f"{self.name}: {mailbox}", str(exc), unread=True)]
        self.store.save(self.name, state)
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

    def sync(self, mailbox: str, state: CalendarState | None, window: Window) -> CalendarState:
        """Bring one mailbox's state up to date: incrementally when its delta link still covers the
        window, else with a full read. Never touches the store (it runs in a worker thread)."""
        check(self.stop)
        links = _links(state.cursor) if state is not None else []
        if state is not None and links and "masters" in state.extra and _covers(state, window):
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
                changed -= _drop_ignored(state)
                state.cursor = _cursor([link for _items, link in rounds])
                fetched = self._refresh_masters(mailbox, state, changed)
                dropped = _keep_possible(state)
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
            {"listed": [_z(listed.start), _z(listed.end)], "masters": {}, "ignored": []},
            revision=new_revision(),
        )
        changed = set()
        for items, _link in read:
            changed |= _merge(state.events, items)
        needed = _series(state)
        state.extra["masters"].update((str(m["id"]), _lean(m)) for m in found if str(m.get("id")) in needed)
        self._refresh_masters(mailbox, state, changed - needed)  # fetches only what the listing lacked
        _keep_possible(state)
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


def possible(event: Event) -> bool:
    """Whether an event (a series master or a single instance) could be a 1:1: timed, and two people,
    organizer included (rooms and resources are not people)."""
    if event.get("isAllDay"):
        return False
    people = {
        str(address).lower()
        for attendee in event.get("attendees") or ()
        if attendee.get("type") != "resource"
        and (address := (attendee.get("emailAddress") or {}).get("address"))
    }
    organizer = ((event.get("organizer") or {}).get("emailAddress") or {}).get("address")
    if organizer:
        people.add(str(organizer).lower())
    return len(people) == 2


def _keep_possible(state: CalendarState) -> bool:
    """Keep what could count for a 1:1: single instances that could be one, and every instance of a
    series whose master could be one (the others' masters are remembered as ignored, so that they are
    not fetched again until their series changes). A later change to any of them arrives whole.
    Whether it dropped anything."""
    masters: dict[str, Any] = state.extra["masters"]
    ignored = set(state.extra.get("ignored") or ())
    before = len(masters) + len(state.events)
    for ident, master in list(masters.items()):
        if not possible(master):
            del masters[ident]
            ignored.add(ident)
    for key, event in list(state.events.items()):
        series = event.get("seriesMasterId")
        if series:
            if str(series) not in masters:
                del state.events[key]
        elif not possible(event):
            del state.events[key]
    state.extra["ignored"] = sorted(ignored)
    return len(masters) + len(state.events) != before


def _drop_ignored(state: CalendarState) -> set[str]:
    """Drop the instances a delta round brought of series known not to be 1:1s, unless the instance
    itself could now be one (then its master is fetched again and judged anew); the series dropped."""
    ignored = set(state.extra.get("ignored") or ())
    dropped: set[str] = set()
    for key, event in list(state.events.items()):
        series = str(event.get("seriesMasterId") or "")
        if series in ignored and "attendees" in event and not possible(event):
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
