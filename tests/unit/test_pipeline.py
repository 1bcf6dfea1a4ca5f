from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from calsync.config import load_config
from calsync.demo import write_demo
from calsync.pipeline import make_clock, sync_window


def test_today_is_taken_in_the_org_time_zone_and_as_of_is_its_midnight(tmp_path: Path) -> None:
    config_path, _ = write_demo(tmp_path, date(2026, 11, 21))  # org.timezone = Europe/Berlin
    config = load_config(config_path)
    late_evening_utc = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)  # already the 22nd in Berlin
    clock = make_clock(config, now=lambda: late_evening_utc)
    assert clock.as_of_date == date(2026, 11, 22)
    assert clock.as_of == datetime(2026, 11, 22, tzinfo=ZoneInfo("Europe/Berlin"))
    assert make_clock(config, date(2026, 1, 5)).as_of == datetime(
        2026, 1, 5, tzinfo=ZoneInfo("Europe/Berlin")
    )


def test_sync_window_covers_both_windows_with_a_margin(tmp_path: Path) -> None:
    config = load_config(write_demo(tmp_path, date(2026, 11, 21))[0])
    clock = make_clock(config, date(2026, 11, 21))
    window = sync_window(clock)
    assert window.start < datetime.combine(clock.window_start, datetime.min.time(), tzinfo=clock.as_of.tzinfo)
    assert window.end > clock.horizon
    assert window.end - window.start >= timedelta(days=180)
