"""The demo config's rules, for tests that serve the demo org through another source."""

from __future__ import annotations

import json
import tomllib
from datetime import date
from typing import Any

from calsync.demo import CONFIG


def _toml(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers and booleans are written alike


def demo_rules(roster: str = "demo/org.csv") -> str:
    """The demo config's rules (its [org] with the holidays, the people who do not count in [detect],
    [cadence], [report], any absences and exclusions), its roster at ``roster``, without its ICS source,
    agendas and digests: a report served by Google or Graph is then made by the rules the ICS report
    is, read from the demo so that they never drift apart."""
    settings = tomllib.loads(CONFIG)
    for own in ("sources", "agenda", "digest", "state"):
        settings.pop(own, None)
    settings["org"]["roster"] = roster
    lines: list[str] = []
    for name, section in settings.items():
        for table in section if isinstance(section, list) else [section]:
            lines.append(f"[[{name}]]" if isinstance(section, list) else f"[{name}]")
            lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"
