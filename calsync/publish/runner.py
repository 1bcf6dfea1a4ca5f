"""One agenda pass: for every 1:1 due an agenda, write its document once and link it once.

What makes it safe to run every few minutes, forever:

- **Idempotent.** Each step is recorded in the state file as soon as it is done, and each step is
  idempotent at the provider too, for the crash between doing and recording: a document is found again
  by its key before one is created, a link is looked for in the event before it is written. A pass
  after a finished one reads nothing and writes nothing.
- **A moved occurrence keeps its agenda**: agendas are keyed by series and *original* start.
- **A cancelled occurrence keeps its document**; its open items move on to the pair's next agenda,
  which carries the unticked items of the previous one (read back from the backend).
- **People's words are never overwritten**: a per-meeting document is never written again once it
  exists; a rolling document only gets a new section on top; an event gets calsync's marked section
  or attachment, nothing else of it changes.
- **One failure is one line**: a document or link that cannot be written is reported and retried on
  the next pass; the other agendas go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jinja2

from calsync.agenda import (
    AgendaInput,
    AgendaPlan,
    Person,
    agenda_key,
    compose,
    growth_theme,
    kind_of,
    latest_section,
    open_items,
)
from calsync.config import PER_MEETING, ROLLING, AgendaConfig
from calsync.model import Occurrence
from calsync.org import Org
from calsync.publish.base import Doc, Documents, Links, Meeting, PublishError, digest
from calsync.store import StateStore

#: What an agenda of a calendar calsync only reads says instead of "linked".
READ_ONLY = "ICS calendars are read-only, so the link is not put in the event"


@dataclass(frozen=True)
class Backend:
    """Where a source's agendas go and how their links get into its events."""

    name: str
    documents: Documents
    links: Links
    writes_events: bool = True  # False for calendars calsync only reads (ICS)


@dataclass(frozen=True)
class Outcome:
    """What a pass did about one 1:1, for the person running it."""

    action: str  # created, linked, updated, unchanged, skipped, failed, would create, would link
    manager: str
    report: str
    start: datetime
    detail: str = ""
    url: str | None = None
    names: str = ""  # "Report Name / Manager Name", for people

    @property
    def failed(self) -> bool:
        return self.action == "failed"


@dataclass
class AgendaPass:
    """Everything one pass needs; :meth:`run` does it."""

    plans: list[AgendaPlan]
    org: Org
    backend_for: Callable[[Occurrence], Backend | str]  # a backend, or why there is none
    store: StateStore
    settings: AgendaConfig
    env: jinja2.Environment
    cancelled: set[str] = field(default_factory=set)  # keys of occurrences now cancelled
    dry_run: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    backends_by_name: dict[str, Backend] = field(default_factory=dict)  # every backend, to read back

    def run(self) -> list[Outcome]:
        if not self.dry_run:
            self._note_cancellations()
        outcomes: list[Outcome] = []
        for plan in self.plans:
            try:
                outcomes.append(self._one(plan))
            except PublishError as exc:
                outcomes.append(self._outcome(plan, "failed", str(exc)))
        return outcomes

    # -- one 1:1 ---------------------------------------------------------------------------------------

    def _one(self, plan: AgendaPlan) -> Outcome:
        record = self.store.agenda(plan.key)
        rolling = self.settings.mode == ROLLING
        backend = self.backend_for(plan.occurrence)
        if not rolling and record is not None and record.get("linked"):
            detail = f"already written; {READ_ONLY}" if _read_only(backend) else "already linked"
            return self._outcome(plan, "unchanged", detail, _url(record))
        if isinstance(backend, str):
            return self._outcome(plan, "skipped", backend)
        if rolling:
            return self._rolling(plan, backend, record)
        return self._per_meeting(plan, backend, record)

    def _per_meeting(self, plan: AgendaPlan, backend: Backend, record: dict[str, Any] | None) -> Outcome:
        owner, other = self._owner(plan)
        if self.dry_run:
            what = "would link" if record and record.get("doc") else "would create"
            return self._outcome(plan, what, f"{backend.name}, owned by {owner}, shared with {other}")
        created = False
        if record is None or not record.get("doc"):
            number, agenda_input = self._input(plan)
            agenda = compose(agenda_input, self.env, self.settings.career_every_weeks)
            doc_key = digest(plan.key)
            doc = backend.documents.find(doc_key, owner)
            if doc is None:
                doc = backend.documents.create(doc_key, owner, self._title(plan), agenda)
                created = True
            record = self._record(plan, backend, doc, number)
        doc = _doc(record)
        if not record.get("shared"):
            # recorded once shared: a crash before that finds the document again by its key
            backend.documents.share(doc, other)
            record["shared"] = True
            self.store.save_agenda(record)
        written = backend.links.link(self._meeting(plan, per_occurrence=True), doc)
        record["linked"] = True
        self.store.save_agenda(record)
        action = "created" if created else ("linked" if written else "unchanged")
        if not backend.writes_events:
            detail = f"{'document created' if created else 'already written'}; {READ_ONLY}"
        elif created:
            detail = "document created and linked in the event"
        else:
            detail = "linked in the event" if written else "already linked"
        return self._outcome(plan, action, detail, doc.url)

    def _rolling(self, plan: AgendaPlan, backend: Backend, record: dict[str, Any] | None) -> Outcome:
        owner, other = self._owner(plan)
        pair_key = f"pair|{plan.manager}|{plan.report}"
        pair = self.store.agenda(pair_key)
        series = plan.occurrence.series_id
        if record is not None and record.get("section") and pair and series in pair.get("linked_series", []):
            detail = f"already written; {READ_ONLY}" if _read_only(backend) else "section added and linked"
            return self._outcome(plan, "unchanged", detail, _url(pair))
        if self.dry_run:
            what = "would add a section to" if pair and pair.get("doc") else "would create"
            return self._outcome(plan, what, f"the pair's document ({backend.name}), shared with {other}")
        section_id = digest(plan.key, 16)
        action = "unchanged"
        if record is None or not record.get("section"):
            number, agenda_input = self._input(plan)
            agenda = compose(agenda_input, self.env, self.settings.career_every_weeks)
            if pair is None or not pair.get("doc"):
                doc_key = digest(pair_key)
                doc = backend.documents.find(doc_key, owner)
                if doc is None:
                    doc = backend.documents.create(
                        doc_key, owner, self._title(plan, rolling=True), agenda, section_id
                    )
                    action = "created"
                pair = {"key": pair_key, "type": "document", "backend": backend.name, "doc": _doc_json(doc)}
                self.store.save_agenda(pair)
            if action != "created" and backend.documents.prepend(_doc(pair), agenda, section_id):
                action = "updated"
            record = self._record(plan, backend, _doc(pair), number)
            record["section"] = True
            self.store.save_agenda(record)
        assert pair is not None
        doc = _doc(pair)
        if not pair.get("shared"):
            backend.documents.share(doc, other)
            pair["shared"] = True
            self.store.save_agenda(pair)
        if series not in pair.get("linked_series", []):
            written = backend.links.link(self._meeting(plan, per_occurrence=False), doc)
            pair["linked_series"] = [*pair.get("linked_series", []), series]
            self.store.save_agenda(pair)
            if written and action == "unchanged":
                action = "linked"
        detail = {
            "created": "the pair's document created and linked",
            "updated": "a new section added on top",
            "linked": "linked on the series",
            "unchanged": "already there",
        }[action]
        if action == "created" and not backend.writes_events:
            detail = f"the pair's document created; {READ_ONLY}"
        return self._outcome(plan, action, detail, doc.url)

    # -- the pieces ------------------------------------------------------------------------------------

    def _input(self, plan: AgendaPlan) -> tuple[int, AgendaInput]:
        """The agenda's number and content: carried items and growth theme from the pair's previous
        agenda, read back from where it was written."""
        previous = self._previous(plan)
        number = plan.number
        carried: list[str] = []
        theme: str | None = None
        if previous is not None:
            number = int(previous.get("number", 0)) + (0 if previous.get("cancelled") else 1)
            text = self._read(previous)
            if text is not None:
                section = latest_section(text)
                carried, theme = open_items(section), growth_theme(section)
        manager, report = self._person(plan.manager), self._person(plan.report)
        occurrence = plan.occurrence
        return number, AgendaInput(
            manager=manager,
            report=report,
            start=occurrence.start,
            title=occurrence.title or "1:1",
            number=max(number, 1),
            cadence_days=plan.cadence_days,
            growth_theme=theme,
            carried_items=tuple(carried),
        )

    def _previous(self, plan: AgendaPlan) -> dict[str, Any] | None:
        mine = _iso(plan.occurrence.original_start)
        earlier = [
            r
            for r in self.store.agendas()
            if r.get("type") == "occurrence"
            and r.get("manager") == plan.manager
            and r.get("report") == plan.report
            and str(r.get("original_start")) < mine
            and r.get("doc")
        ]
        return max(earlier, key=lambda r: str(r["original_start"])) if earlier else None

    def _read(self, record: Mapping[str, Any]) -> str | None:
        backend = self.backends_by_name.get(str(record.get("backend")))
        if backend is None:
            return None  # written by a backend this config no longer has: nothing to carry over
        return backend.documents.read(_doc(record))

    def _record(self, plan: AgendaPlan, backend: Backend, doc: Doc, number: int) -> dict[str, Any]:
        occurrence = plan.occurrence
        return {
            "key": plan.key,
            "type": "occurrence",
            "mode": self.settings.mode,
            "manager": plan.manager,
            "report": plan.report,
            "series_id": occurrence.series_id,
            "original_start": _iso(occurrence.original_start),
            "start": _iso(occurrence.start),
            "number": number,
            "kind": str(kind_of(number, plan.cadence_days, self.settings.career_every_weeks)),
            "backend": backend.name,
            "doc": _doc_json(doc),
            "written_at": _iso(self.now),
        }

    def _owner(self, plan: AgendaPlan) -> tuple[str, str]:
        """Whose document it is (the organizer's, if they are one of the two; else the manager's), and
        who it is shared with (the other one)."""
        organizer = plan.occurrence.organizer
        owner = organizer if organizer in (plan.manager, plan.report) else plan.manager
        assert owner is not None
        return owner, plan.report if owner == plan.manager else plan.manager

    def _meeting(self, plan: AgendaPlan, *, per_occurrence: bool) -> Meeting:
        occurrence = plan.occurrence
        organizer = occurrence.organizer or plan.manager
        recurring = occurrence.recurrence_id is not None
        return Meeting(
            organizer=organizer,
            series_id=occurrence.series_id,
            original_start=occurrence.original_start if recurring and per_occurrence else None,
            start=occurrence.start,
        )

    def _title(self, plan: AgendaPlan, *, rolling: bool = False) -> str:
        names = f"{self.org.name(plan.report)} / {self.org.name(plan.manager)}"
        if rolling:
            return f"1:1 agenda {names}"
        return f"1:1 agenda {names} {plan.occurrence.start.date().isoformat()}"

    def _person(self, email: str) -> Person:
        return Person(email, self.org.name(email))

    def _outcome(self, plan: AgendaPlan, action: str, detail: str, url: str | None = None) -> Outcome:
        return Outcome(
            action,
            plan.manager,
            plan.report,
            plan.occurrence.start,
            detail,
            url,
            names=f"{self.org.name(plan.report)} / {self.org.name(plan.manager)}",
        )

    def _note_cancellations(self) -> None:
        """Agendas whose occurrence has since been cancelled: their number is not used up, and their
        open items move on to the next agenda."""
        for key in sorted(self.cancelled):
            record = self.store.agenda(key)
            if record is not None and not record.get("cancelled"):
                record["cancelled"] = True
                self.store.save_agenda(record)


def _read_only(backend: Backend | str) -> bool:
    """Whether the calendar's backend never writes its events (an ICS calendar is only read)."""
    return isinstance(backend, Backend) and not backend.writes_events


def cancelled_keys(occurrences: Iterable[Occurrence]) -> set[str]:
    """The agenda keys (as :attr:`AgendaPlan.key`) of the cancelled occurrences among these."""
    return {agenda_key(o) for o in occurrences if o.cancelled}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _doc_json(doc: Doc) -> dict[str, str]:
    return {"id": doc.id, "url": doc.url, "owner": doc.owner}


def _doc(record: Mapping[str, Any]) -> Doc:
    doc = record["doc"]
    return Doc(str(doc["id"]), str(doc["url"]), str(doc["owner"]))


def _url(record: Mapping[str, Any] | None) -> str | None:
    if record is None or not record.get("doc"):
        return None
    return str(record["doc"]["url"])


__all__ = ["PER_MEETING", "ROLLING", "AgendaPass", "Backend", "Outcome", "cancelled_keys"]
