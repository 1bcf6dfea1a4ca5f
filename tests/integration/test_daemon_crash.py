"""`calsync run` killed with SIGKILL at random points, again and again, and a corrupt state file: the
state always loads, and after the restarts no agenda, link or digest exists twice."""

from __future__ import annotations

import functools
import json
import random
import time
from pathlib import Path

import pytest

from calsync.digest.send import IN_DOUBT, SENT
from calsync.store import StateStore
from tests.fakes.graph import FakeGraph
from tests.fakes.smtp import SmtpFake
from tests.integration.daemon_env import MAYA, Service, links_in

pytestmark = pytest.mark.usefixtures("loopback_only")

KILLS = 14
TEAMS = 5  # Maya and five more managers: six agendas and six digests to write in the first cycles


def assert_once_each(service: Service, smtp: SmtpFake) -> None:
    """One agenda file per 1:1, linked once in one event; at most one digest per leader, and every
    leader's digest recorded as sent or in doubt (never lost without a trace)."""
    organizers = [MAYA, *(lead for lead, _ in service.teams)]
    for organizer in organizers:
        assert len(service.agenda_files(organizer)) == 1, organizer
        linked = service.linked_events(organizer)
        assert len(linked) == 1 and links_in(linked[0]) == 1, organizer
    store = StateStore(service.state, lock=False, recover=False)
    try:
        for leader in organizers:
            assert len(smtp.messages_to(leader)) <= 1, leader
            records = store.digests(leader)
            assert len(records) == 1 and records[0]["status"] in (SENT, IN_DOUBT), records
            if records[0]["status"] == SENT:
                assert len(smtp.messages_to(leader)) == 1, leader
    finally:
        store.close()


def _opened_since(service: Service, before: int) -> bool:
    return len(service.events("state opened")) > before


def test_sigkill_at_random_points_never_breaks_the_state_or_duplicates_anything(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake
) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    service = Service(tmp_path, graph, smtp, interval="1s", teams=TEAMS)
    graph.slow_next(10_000, 0.02)  # every request takes a little while: kills land inside cycles
    for n in range(KILLS):
        opened = len(service.events("state opened"))
        service.start()
        if n % 2:  # every other kill lands after the start, however long this machine takes to start
            service.wait_for(functools.partial(_opened_since, service, opened), why="the state opened")
        time.sleep(chance.uniform(0.3, 2.5))
        service.kill()
        if service.state.exists():
            # Whole after every kill, whatever it interrupted (a cycle's write, a digest, a link).
            json.loads(service.state.read_text(encoding="utf-8"))
            store = StateStore(service.state, lock=False, recover=False)
            store.close()
        assert not list(service.state.parent.glob("*.corrupt-*")), f"seed {seed}, kill {n}"
    graph.clear_faults()
    service.start("--once")
    assert service.wait(timeout=120) in (0, 3), service.tail()
    assert not service.events("state opened")[-1].get("recovered"), f"seed {seed}"
    assert_once_each(service, smtp)
    started = sum(1 for e in service.logs() if e.get("event") == "state opened") - 1
    assert started >= KILLS // 2, f"seed {seed}: most kills should land after the start"


def test_a_corrupt_state_file_is_set_aside_and_the_next_cycle_goes_on_without_duplicates(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake
) -> None:
    service = Service(tmp_path, graph, smtp, teams=1)
    service.start("--once")
    assert service.wait(timeout=60) == 0, service.tail()
    service.state.write_bytes(b'{"m365": {"1": {"calendar": "maya@acme.te')  # the disk lost the end
    service.start("--once")
    # The state of the write before: one step behind, Maya's digest was being sent (so it is in doubt)
    assert service.wait(timeout=60) in (0, 3), service.tail()
    opened = service.events("state opened")[-1]
    assert opened["recovered"] and Path(opened["recovered"]).name.startswith("calsync-state.json.corrupt-")
    assert any("moved it aside" in e["message"] for e in service.logs())
    assert_once_each(service, smtp)

    # Both the state and the state before it are damaged: calsync starts afresh, and still writes no
    # second agenda or link (they are found again where they were written).
    service.state.write_text("[]")
    service.state.with_name(service.state.name + ".previous").write_text("not json")
    service.start("--once")
    assert service.wait(timeout=60) in (0, 3), service.tail()
    assert any("starting afresh" in e["message"] for e in service.logs())
    organizers = [MAYA, *(lead for lead, _ in service.teams)]
    for organizer in organizers:
        assert len(service.agenda_files(organizer)) == 1
        assert [links_in(e) for e in service.linked_events(organizer)] == [1]
