"""The ``calsync`` command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from calsync import __version__
from calsync.config import MICROSOFT_AUTHORITY_HOST, ConfigError, load_config
from calsync.org import RosterError
from calsync.progress import progress_board_for
from calsync.report import Report, render_csv, render_json, render_table, table_width
from calsync.store import StateError, write_output
from calsync.text import printable

if TYPE_CHECKING:
    from email.message import EmailMessage

    from calsync.pipeline import DigestRun
    from calsync.progress import Progress
    from calsync.publish.runner import Outcome

# Exit codes scripts can rely on (also in the README).
EXIT_OK = 0  # the report is complete
EXIT_INTERNAL = 1  # a bug in calsync: please report it
EXIT_USAGE = 2  # bad command line, config or roster: nothing was produced
EXIT_PARTIAL = 3  # the report was produced, but some inputs were skipped (see the errors)
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
calsync finds the 1:1 meetings between managers and their reports in your org's calendars,
checks each pair against the cadence you want, and reports the pairs whose 1:1s have lapsed,
keep being cancelled or declined, or never existed. It writes an agenda for every upcoming
1:1 (`calsync agendas`) and sends each leader a weekly digest of their part of the org
(`calsync digest`).

Start with `calsync demo`: it writes a fictional org with calendars, runs the report on it,
and writes its agendas and digests as files.
"""

EPILOG = """\
exit codes (each command's --help gives its own in detail):
  0    done: the report is complete; every agenda and digest due exists; doctor's checks passed;
       run: stopped cleanly
  2    nothing was done: a usage, config or roster problem, no way to send digests, or the state
       file held by a running calsync for a command that writes (the message says what to fix)
  3    done in part: some calendars, events, roster lines, agendas or digests were skipped, failed
       or held back (listed on stderr), or a doctor check failed
  1    internal error (a bug: please report it)
  130  interrupted (Ctrl-C)

docs: README.md and docs/ in calsync's source; `calsync config example` documents every key
"""

REPORT_EPILOG = """\
exit codes:
  0  report complete
  2  usage, config or roster error (nothing produced; the message says what to fix)
  3  report produced, but some calendars, events or roster lines were skipped (listed on stderr),
     or some pairs could not be checked (status unknown)
  1  internal error (a bug: please report it)

docs: README.md in calsync's source (configuration reference, statuses and how they are decided)
"""

STATUS_HELP = """\
statuses (listed first: pairs that could not be checked; then worst first):
  unknown    could not be checked: the manager's calendar could not be read (and no
             stored reading of it), and no other calendar shows the pair; never flagged
  overdue    the last 1:1 is more than cadence + grace days ago, or every 1:1 in the
             look-back window was cancelled or declined
  no-series  no 1:1 held in the window and none scheduled ahead
  at-risk    nothing held yet but one is scheduled; or nothing scheduled ahead; or the
             next 1:1 is further from the last one than cadence + grace allows
  ok         held recently enough and the next one is scheduled in time
  untracked  peer or other pairs (and skip-level pairs unless cadence.skip_level_days is set)
days either person was away (out-of-office, [[absence]], public holidays) are not counted,
and a 1:1 cancelled or declined on them is excused; a new pair (roster column since, or the
day calsync first saw the line) is not flagged for the time before it existed
"""


DEMO_EPILOG = """\
exit codes:
  0  the demo was written and reported on (its planted broken file is expected)
  2  DIR cannot be used (it holds other files: see --force; or it cannot be written), or a usage
     error
  1  internal error (a bug: please report it)
"""


#: The dates --as-of and --now accept: wide enough for any real org, and far enough from the ends of
#: Python's calendar (years 1 and 9999) that every window calsync computes around them exists.
EARLIEST, LATEST = date(1900, 1, 1), date(9899, 12, 31)
_RANGE = f"from {EARLIEST.isoformat()} to {LATEST.isoformat()}"


def _in_range(day: date, text: str) -> None:
    if not EARLIEST <= day <= LATEST:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: calsync takes dates {_RANGE}")


def _date(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
    _in_range(day, text)
    return day


AGENDAS_EPILOG = """\
exit codes:
  0  every 1:1 due an agenda has it (created now, or before)
  2  usage, config or roster error (nothing written; the message says what to fix)
  3  some agendas could not be written, or some calendars were skipped (listed on stderr);
     the next run tries again
  1  internal error (a bug: please report it)
"""


DIGEST_EPILOG = """\
exit codes:
  0  every leader has this period's digest (sent now, or before); or the listing or preview
     was produced
  2  usage, config or roster error, or no way to send (nothing sent; the message says what to fix)
  3  some digests failed or were held back, or some inputs were skipped (listed on stderr);
     the next --send tries the missing ones again and never resends the others
  1  internal error (a bug: please report it)
"""


DOCTOR_DESCRIPTION = """\
Check that this install works, and say how to fix what does not. In order:

  config    the config file loads (its problems, each with the key; a bad config stops here)
  roster    the roster CSV or the org chart can be read (people, manager/report pairs,
            skipped lines)
  sources   each source by its name: an ICS source's files or URL are read; a Google or
            Microsoft 365 source signs in (service account key / token file; app secret,
            certificate or token cache) and reads one calendar or mailbox (the first it
            lists, else the signed-in person's, else the roster's first manager)
  state     the state file can be read, its schema, when each source last synced, and
            whether a running calsync holds it
  smtp      with [digest] delivery = "smtp": connect and log in to [smtp] as digests are
            sent, then quit without sending anything; with delivery = "outbox": the
            outbox directory can be written

Every failure comes with its fix: which key to change, which permission to grant, which
command to run. Nothing is written, except the token caches msal may refresh (as every
run does).

exit codes:
  0  every check passed
  3  a check failed (see its fix)
  1  internal error (a bug: please report it)
"""


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date and time as YYYY-MM-DDTHH:MM, got {text!r}"
        ) from None
    _in_range(moment.date(), text)
    return moment


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calsync",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"calsync {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config",
            "-c",
            type=Path,
            default=None,
            metavar="FILE",
            help="the TOML config (default: $CALSYNC_CONFIG, else calsync.toml in $CONFIGURATION_DIRECTORY "
            "when systemd sets it, else ./calsync.toml)",
        )

    def now_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--now",
            type=_moment,
            metavar="YYYY-MM-DDTHH:MM",
            help="run as if it were this moment (in org.timezone unless an offset is given); default: now",
        )

    def output_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--as-of",
            type=_date,
            metavar="YYYY-MM-DD",
            help="report as of 00:00 of this date in org.timezone (UTC if unset); default: today",
        )
        sub.add_argument(
            "--format",
            choices=("table", "json", "csv"),
            default="table",
            help="table (default): worst first, for people; json: the stable contract for scripts; "
            "csv: one row per pair, for spreadsheets",
        )
        sub.add_argument("--all", action="store_true", help="table: also show untracked (peer, other) pairs")
        sub.add_argument(
            "--output", "-o", type=Path, metavar="FILE", help="write the report to FILE instead of stdout"
        )
        sub.add_argument(
            "--color",
            choices=("auto", "always", "never"),
            default="auto",
            help="colour the table's statuses (auto: when stdout is a terminal and NO_COLOR is unset)",
        )

    report = commands.add_parser(
        "report",
        help="check every manager/report pair's 1:1s against the cadence",
        description="Read the roster and every calendar source of the config, find the 1:1s and report "
        "each pair's cadence status.\n\n" + STATUS_HELP,
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(report)
    output_options(report)

    demo = commands.add_parser(
        "demo",
        help="write a fictional org with calendars into a directory and report on it",
        description="Write a fictional org (about 15 people in several teams, with calendars dated "
        "relative to --as-of) into DIR, with a config and a roster, then run the report on it. The "
        "demo covers every status and the edge cases calsync handles (moved, cancelled and declined "
        "occurrences, rooms, external guests, time zones, stale copies, a broken file). No account "
        "is needed. The same date always gives the same files.\n\n" + STATUS_HELP,
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=Path("calsync-demo"),
        help="where to write (default: ./calsync-demo): an empty or new directory, or one an earlier demo "
        "wrote (its files are replaced; nothing else in it is touched)",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="write into DIR even if it holds other files: the demo's own files (calsync.toml, org.csv, "
        "calendars/*.ics of its people, calsync-state.json) replace any of the same name; nothing else "
        "is deleted or changed",
    )
    output_options(demo)
    agendas = commands.add_parser(
        "agendas",
        help="write an agenda document for every upcoming 1:1 and link it in the event",
        description="""\
Sync every source, then give each direct manager/report 1:1 that starts within
[agenda] lead_days (default 2) its agenda: a document written once (Google Docs,
OneDrive or local files, chosen per source), shared with the two participants only,
and linked once in the event. Running it again changes nothing, so it is safe to run
from cron every few minutes. Prints what it created, linked or skipped, and why.
""",
        epilog=AGENDAS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(agendas)
    agendas.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be created and linked, and write nothing (calendars are still synced)",
    )
    now_option(agendas)

    digest = commands.add_parser(
        "digest",
        help="send every leader a digest of the 1:1 cadence gaps in the part of the org they lead",
        description="""\
Every leader (everyone in the roster with reports, or [digest] leaders) gets one digest
per period: headline figures for their whole subtree and the change since their last
digest, then per manager the pairs that are not ok (days since the last 1:1,
cancellations, declines, the next date, why), excluded pairs, and 1:1s held per week
over 12 weeks. Names, dates and counts only: never meeting titles or agenda content.

The period begins each week at [digest] day and hour (default monday 8:00, in
org.timezone); the report is made as of that day. Without --send or --preview, lists
the leaders and whether their digest of the current period was sent.
""",
        epilog=DIGEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(digest)
    what = digest.add_mutually_exclusive_group()
    what.add_argument(
        "--send",
        action="store_true",
        help="deliver each digest of this period not sent yet: through [smtp], or as .eml files into "
        '[digest] outbox with delivery = "outbox"; a second run sends nothing',
    )
    what.add_argument(
        "--preview",
        metavar="EMAIL",
        help="write the digest of the leader EMAIL (exactly the message --send would deliver) and send "
        "nothing",
    )
    digest.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="--preview: write to FILE instead of stdout; FILE.html or FILE.txt gets that part alone, "
        "any other name the whole message (.eml)",
    )
    now_option(digest)

    run = commands.add_parser(
        "run",
        help="run calsync as a service: sync, agendas and digests on schedule (systemd, or --once for cron)",
        description="""\
Run calsync for good: every [daemon] sync_interval (default 5 minutes, with jitter) a
cycle syncs every source, writes the JSON report ([daemon] report), the agendas due and
the digests of the current period not sent yet; the digests' due time wakes a cycle too.
Cycles never overlap. One line is logged per event. /healthz and /metrics (Prometheus)
answer on [daemon] listen (default 127.0.0.1:9468).

SIGTERM or SIGINT: stop within 10 seconds, the state saved. SIGHUP: reload the config (a
config with problems is rejected and the running one kept). Under systemd (Type=notify)
calsync reports READY, WATCHDOG and STOPPING itself: `calsync config systemd-unit` prints the unit.
""",
        epilog="""\
exit codes:
  0  stopped cleanly (SIGTERM/SIGINT); --once: the cycle was complete
  2  cannot start: config problems, the state file is in use by another calsync or was
     written by a newer one, the listen address is taken (the log says which)
  3  --once: the cycle ran, but some inputs were skipped or some writes failed (logged)
  1  internal error (a bug: please report it)
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(run)
    run.add_argument(
        "--once", action="store_true", help="run one cycle and exit (for cron); no /healthz, no scheduler"
    )
    run.add_argument(
        "--log-format",
        choices=("plain", "json"),
        default="plain",
        help="plain (default): one line per event; json: one JSON object per line, for log collectors",
    )

    config_command = commands.add_parser(
        "config",
        help="print the annotated example config, or the systemd unit, to start an install from",
        description="Print a file calsync ships, to start from:\n\n"
        "  calsync config example > calsync.toml\n"
        "      the example config: every key, with what it does and its default\n"
        "  calsync config systemd-unit > /etc/systemd/system/calsync.service\n"
        "      the hardened systemd unit that runs `calsync run` (adjust ExecStart= to where calsync is)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_command.add_argument(
        "what", choices=tuple(SHIPPED), help="example: the example config; systemd-unit: the unit file"
    )

    doctor = commands.add_parser(
        "doctor",
        help="check the config, the roster, each source's sign-in and access, and SMTP, with the fixes",
        description=DOCTOR_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(doctor)

    auth = commands.add_parser(
        "auth",
        help="sign in to your own calendar (Google or Microsoft 365), to try calsync on it",
        description="Sign in once (Google: in a browser; Microsoft: with a device code); later runs "
        "refresh the stored token silently.",
    )
    providers = auth.add_subparsers(dest="provider", metavar="PROVIDER", required=True)
    google = providers.add_parser(
        "google",
        help="Google Calendar, with the installed-app (browser) sign-in",
        description="Run Google's sign-in for an installed app and store the token (mode 0600). Create "
        "the OAuth client in the Google Cloud console (APIs & Services > Credentials > OAuth client ID > "
        "Desktop app) and download its JSON. calsync asks only for read access to calendar events; with "
        "--agendas also to edit them and to the Drive files it creates itself. "
        'Then point a google source at the token: token_file = "google-token.json".',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    google.add_argument(
        "--agendas",
        action="store_true",
        help="also allow writing agendas: edit calendar events, and Drive files calsync created "
        "(scopes calendar.events and drive.file)",
    )
    google.add_argument(
        "--client-secrets",
        type=Path,
        required=True,
        metavar="FILE",
        help="the OAuth client's JSON (Desktop app)",
    )
    google.add_argument(
        "--token",
        type=Path,
        default=Path("google-token.json"),
        metavar="FILE",
        help="where to store the token (default: ./google-token.json; written with mode 0600)",
    )
    google.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL instead of opening it"
    )
    microsoft = providers.add_parser(
        "microsoft",
        help="Microsoft 365, with the device-code sign-in",
        description="Sign in to Microsoft 365 with a device code: calsync prints a code and a web "
        "address; open it on any device, enter the code and sign in. The tokens are kept in a token "
        "cache (mode 0600) that later runs refresh silently. calsync asks only to read your calendar "
        "(Calendars.Read) and to know who you are (User.Read). The app registration must allow public "
        "client flows (Authentication > Allow public client flows). Then point a microsoft source at "
        'the cache: token_cache = "microsoft-token.json".',
    )
    microsoft.add_argument(
        "--tenant",
        required=True,
        help="the directory (tenant) ID, or a domain like acme.onmicrosoft.com ('organizations' for any)",
    )
    microsoft.add_argument(
        "--client-id", required=True, help="the app registration's application (client) ID"
    )
    microsoft.add_argument(
        "--token-cache",
        type=Path,
        default=Path("microsoft-token.json"),
        metavar="FILE",
        help="where to keep the tokens (default: ./microsoft-token.json; written with mode 0600)",
    )
    microsoft.add_argument(
        "--authority-host",
        default=MICROSOFT_AUTHORITY_HOST,
        metavar="URL",
        help=f"the sign-in service (default: {MICROSOFT_AUTHORITY_HOST}; national clouds and tests differ)",
    )
    microsoft.add_argument(
        "--agendas",
        action="store_true",
        help="also allow writing agendas: Calendars.ReadWrite and Files.ReadWrite",
    )
    microsoft.add_argument(
        "--ca-bundle", type=Path, metavar="FILE", help="CA certificates to trust for the sign-in service"
    )
    return parser


#: What ``calsync config`` prints: files shipped inside the package (so in a wheel too).
SHIPPED = {"example": "calsync.example.toml", "systemd-unit": "calsync.service"}


def shipped(what: str) -> str:
    """The text of a file calsync ships (:data:`SHIPPED`)."""
    from importlib.resources import files

    return files("calsync").joinpath("examples", SHIPPED[what]).read_text(encoding="utf-8")


def cmd_config(args: argparse.Namespace, stdout: TextIO) -> int:
    stdout.write(shipped(args.what))
    return EXIT_OK


def cmd_auth(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.provider == "microsoft":
        return cmd_auth_microsoft(args, stdout, stderr)
    from calsync.publish.google_docs import AGENDA_SCOPES
    from calsync.sources.google import READ_SCOPES, sign_in

    if not args.client_secrets.is_file():
        print(
            f"calsync: {args.client_secrets}: no such file; download the OAuth client's JSON from the Google "
            "Cloud console (APIs & Services > Credentials) and pass its path",
            file=stderr,
        )
        return EXIT_USAGE
    try:
        scopes = sign_in(
            args.client_secrets,
            args.token,
            scopes=(*READ_SCOPES, *AGENDA_SCOPES) if args.agendas else READ_SCOPES,
            open_browser=not args.no_browser,
        )
    except (ValueError, KeyError) as exc:
        print(
            f"calsync: {args.client_secrets}: not an OAuth client file for an installed app ({exc})",
            file=stderr,
        )
        return EXIT_USAGE
    except Exception as exc:  # oauthlib's errors: access denied, state mismatch, a network failure
        print(f"calsync: the sign-in did not complete: {type(exc).__name__}: {exc}", file=stderr)
        return EXIT_USAGE
    print(
        f"Signed in (scopes: {scopes}). Token written to {args.token} (mode 0600).\n"
        "Use it in calsync.toml:\n\n"
        f'[[sources]]\ntype = "google"\ntoken_file = "{args.token}"',
        file=stdout,
    )
    return EXIT_OK


def cmd_auth_microsoft(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from calsync.config import MicrosoftSourceConfig
    from calsync.sources.microsoft_auth import (
        AGENDA_DELEGATED_SCOPES,
        DELEGATED_SCOPES,
        AuthError,
        device_sign_in,
    )

    if not args.authority_host.startswith("https://"):
        print(f"calsync: --authority-host must be an https:// URL, got {args.authority_host!r}", file=stderr)
        return EXIT_USAGE
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        print(f"calsync: --ca-bundle {args.ca_bundle}: no such file", file=stderr)
        return EXIT_USAGE
    config = MicrosoftSourceConfig(
        name="microsoft",
        tenant=args.tenant,
        client_id=args.client_id,
        token_cache=args.token_cache,
        authority_host=args.authority_host.rstrip("/"),
        ca_bundle=args.ca_bundle,
    )

    def show(message: str) -> None:
        print(message, file=stderr, flush=True)

    try:
        user = device_sign_in(
            config, show=show, scopes=AGENDA_DELEGATED_SCOPES if args.agendas else DELEGATED_SCOPES
        )
    except AuthError as exc:
        print(f"calsync: {exc}", file=stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"calsync: cannot write {args.token_cache}: {exc.strerror or exc}", file=stderr)
        return EXIT_USAGE
    print(
        f"Signed in as {user}. Tokens kept in {args.token_cache} (mode 0600).\n"
        "Use them in calsync.toml:\n\n"
        f'[[sources]]\ntype = "microsoft"\ntenant = "{args.tenant}"\nclient_id = "{args.client_id}"\n'
        f'token_cache = "{args.token_cache}"',
        file=stdout,
    )
    return EXIT_OK


def _config_path(arg: Path | None) -> Path:
    """--config, else $CALSYNC_CONFIG, else calsync.toml in systemd's ConfigurationDirectory=, else
    ./calsync.toml."""
    if arg is not None:
        return arg
    env = os.environ.get("CALSYNC_CONFIG")
    if env:
        return Path(env)
    directory = os.environ.get("CONFIGURATION_DIRECTORY", "").split(":")[0]
    return Path(directory) / "calsync.toml" if directory else Path("calsync.toml")


def _config_origin(args: argparse.Namespace) -> str:
    """Where the config's path came from, for a message about a config that cannot be used."""
    if getattr(args, "config", None) is not None:
        return ""
    if os.environ.get("CALSYNC_CONFIG"):
        return " (its path is $CALSYNC_CONFIG: change or unset the variable, or pass --config FILE)"
    if os.environ.get("CONFIGURATION_DIRECTORY", "").split(":")[0]:
        return " (its path is calsync.toml in $CONFIGURATION_DIRECTORY, which systemd sets; or pass --config)"
    return " (no --config was given, so it is ./calsync.toml; pass --config FILE)"


def _use_color(choice: str, stream: TextIO) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _emit(report: Report, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    for problem in report.errors:
        print(f"calsync: skipped: {printable(str(problem))}", file=stderr)
    if args.format == "json":
        text = render_json(report)
    elif args.format == "csv":
        text = render_csv(report)
    else:
        color = args.output is None and _use_color(args.color, stdout)
        width = table_width(stdout) if args.output is None else None  # a file is never fitted
        text = render_table(report, show_untracked=args.all, color=color, width=width)
    if args.output is not None:
        try:
            write_output(args.output, text)  # people's data: 0600 whatever the umask
        except OSError as exc:
            print(f"calsync: cannot write {args.output}: {exc.strerror or exc}", file=stderr)
            return EXIT_USAGE
    else:
        stdout.write(text)
    return EXIT_PARTIAL if report.errors or report.unknown_count else EXIT_OK


def cmd_report(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from calsync.pipeline import run_report

    config = load_config(_config_path(args.config))
    notices: list[str] = []
    with _bars(stderr) as bars:
        report = run_report(config, args.as_of, bars, notices)
    _notify(notices, stderr)
    return _emit(report, args, stdout, stderr)


def _notify(notices: Sequence[str], stderr: TextIO) -> None:
    for notice in notices:
        print(f"calsync: note: {printable(notice)}", file=stderr)


@contextlib.contextmanager
def _bars(stream: TextIO) -> Iterator[Callable[[], Progress] | None]:
    """A progress bar per source on a terminal (None elsewhere); the finished bars stay on screen."""
    board = progress_board_for(stream)
    try:
        yield board.bar if board is not None else None
    finally:
        if board is not None:
            board.close()


def cmd_agendas(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from calsync.pipeline import run_agendas

    config = load_config(_config_path(args.config))
    now = _now_arg(args, config.org.timezone)
    with _bars(stderr) as bars:
        run = run_agendas(config, now=now, dry_run=args.dry_run, bars=bars)
    _notify(run.notices, stderr)
    for problem in run.problems:
        print(f"calsync: skipped: {printable(str(problem))}", file=stderr)
    stdout.write(render_outcomes(run.outcomes, config.org.timezone))
    failed = [o for o in run.outcomes if o.failed]
    for outcome in failed:
        print(f"calsync: failed: {printable(f'{outcome.names}: {outcome.detail}')}", file=stderr)
    return EXIT_PARTIAL if failed or run.problems else EXIT_OK


def _now_arg(args: argparse.Namespace, timezone: str | None) -> datetime | None:
    now: datetime | None = args.now
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=ZoneInfo(timezone) if timezone else UTC)
    return now


def cmd_digest(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from calsync.pipeline import DigestError, run_digests

    config = load_config(_config_path(args.config))
    if args.output is not None and args.preview is None:
        print("calsync: --output goes with --preview EMAIL", file=stderr)
        return EXIT_USAGE
    try:
        with _bars(stderr) as bars:
            run = run_digests(
                config, now=_now_arg(args, config.org.timezone), send=args.send, only=args.preview, bars=bars
            )
    except DigestError as exc:
        print(f"calsync: {exc}", file=stderr)
        return EXIT_USAGE
    _notify(run.notices, stderr)
    for problem in run.problems:
        print(f"calsync: skipped: {printable(str(problem))}", file=stderr)
    if args.preview is not None:
        message = run.messages.get(args.preview.strip().lower())
        if message is None:  # it could not be made: a problem above says why
            return EXIT_PARTIAL
        return _write_preview(message, args.output, stdout, stderr) or (
            EXIT_PARTIAL if run.problems else EXIT_OK
        )
    stdout.write(render_digest_run(run))
    failed = [o for o in run.outcomes if o.failed]
    for outcome in failed:
        said = printable(f"{outcome.name} <{outcome.leader}>: {outcome.detail}")
        print(f"calsync: {outcome.action}: {said}", file=stderr)
    return EXIT_PARTIAL if failed or run.problems else EXIT_OK


def _write_preview(message: EmailMessage, output: Path | None, stdout: TextIO, stderr: TextIO) -> int:
    """The whole message, or its HTML or text part when ``output`` ends in .html or .txt."""
    suffix = output.suffix.lower() if output is not None else ""
    if suffix in (".html", ".htm", ".txt"):
        part = message.get_body(preferencelist=("plain",) if suffix == ".txt" else ("html",))
        assert part is not None
        text = part.get_content()
    else:
        text = message.as_string()
    if output is None:
        stdout.write(text)
        return 0
    try:
        write_output(output, text)  # people's data: 0600 whatever the umask
    except OSError as exc:
        print(f"calsync: cannot write {output}: {exc.strerror or exc}", file=stderr)
        return EXIT_USAGE
    return 0


def render_digest_run(run: DigestRun) -> str:
    """One line per leader: sent, written, already sent, failed or held back; or, for a listing,
    due or sent."""
    lines = [f"Digests of the week of {run.period.isoformat()}:"]
    if run.outcomes:
        for o in run.outcomes:
            lines.append(f"  {o.action:<13} {printable(f'{o.name} <{o.leader}>: {o.detail}')}")
        counts: dict[str, int] = {}
        for o in run.outcomes:
            counts[o.action] = counts.get(o.action, 0) + 1
        lines += ["", ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) + "."]
    else:
        for leader, message in run.messages.items():
            state = f"sent {run.sent_before[leader]}" if leader in run.sent_before else "due"
            said = f"{message['To']}: {message['Subject']}"
            lines.append(f"  {state:<13} {printable(said)}")
        if not run.messages:
            lines.append("  (no leaders: nobody in the roster has reports)")
        else:
            lines += ["", "Nothing was sent: --send sends the due ones, --preview EMAIL shows one."]
    return "\n".join(lines) + "\n"


def render_outcomes(outcomes: Sequence[Outcome], timezone: str | None) -> str:
    """One line per 1:1 due an agenda: what was done, when the 1:1 is, who, and the link."""
    if not outcomes:
        return "No 1:1 starts within the lead time: no agenda is due.\n"
    zone = ZoneInfo(timezone) if timezone else UTC
    lines = []
    for o in sorted(outcomes, key=lambda o: (o.start, o.manager, o.report)):
        when = o.start.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        link = f"  {o.url}" if o.url else ""
        lines.append(f"{o.action:<14} {when}  {printable(f'{o.names}: {o.detail}{link}')}")
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    return "\n".join(lines) + f"\n\n{len(outcomes)} 1:1s due an agenda: {summary}\n"


def cmd_demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from calsync.demo import DemoDirectoryError, demo_directory, demo_today

    try:
        with demo_directory(args.dir, force=args.force):
            return _demo(args, args.as_of or demo_today(), stdout, stderr)
    except DemoDirectoryError as exc:
        print(f"calsync: {exc}", file=stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"calsync: cannot write the demo into {args.dir}: {exc.strerror or exc}", file=stderr)
        return EXIT_USAGE


def _demo(args: argparse.Namespace, as_of: date, stdout: TextIO, stderr: TextIO) -> int:
    from calsync.demo import email as demo_email
    from calsync.demo import write_files
    from calsync.pipeline import org_timezone, run_agendas, run_digests, run_report

    config_path = write_files(args.dir, as_of)
    config = load_config(config_path)
    with _bars(stderr) as bars:
        report = run_report(config, as_of, bars)
    chatty = args.format == "table" and args.output is None
    if chatty:
        print(f"Wrote a demo org to {args.dir}/ (config: {config_path}), as of {as_of}.\n", file=stderr)
    code = _emit(report, args, stdout, stderr)
    # The agendas of the 1:1s in the demo's lead time (three days) after the as-of date, as local files.
    now = datetime.combine(as_of, time(0), tzinfo=org_timezone(config))
    agendas = run_agendas(config, now=now)
    digests = run_digests(config, now=now, send=True)
    if chatty:
        directory, days = config.agenda.directory, config.agenda.lead_days
        print(f"\nAgendas for the 1:1s of the next {days} days (local files in {directory}):", file=stderr)
        stderr.write(render_outcomes(agendas.outcomes, config.org.timezone))
        print(f"\nThe leaders' digests (as .eml files in {config.digest.outbox}):", file=stderr)
        for o in digests.outcomes:
            print(f"  {o.action:<8} {printable(f'{o.name}: {o.detail}')}", file=stderr)
        print(
            f"\nThe problems above are planted in the demo to show how bad input is reported.\n"
            f"Next: calsync report --config {config_path} --as-of {as_of} --format json\n"
            f"      calsync agendas --config {config_path} --now {as_of}T00:00 --dry-run\n"
            f"      calsync digest --config {config_path} --now {as_of}T00:00 --preview {demo_email('maya')} "
            "-o digest.html",
            file=stderr,
        )
    return EXIT_OK if code == EXIT_PARTIAL else code  # the demo's planted problems are expected


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out)
        return EXIT_USAGE
    try:
        if args.command == "report":
            return cmd_report(args, out, err)
        if args.command == "auth":
            return cmd_auth(args, out, err)
        if args.command == "agendas":
            return cmd_agendas(args, out, err)
        if args.command == "digest":
            return cmd_digest(args, out, err)
        if args.command == "run":
            from calsync.daemon import run as run_daemon

            return run_daemon(
                _config_path(args.config), once=args.once, log_format=args.log_format, stderr=err
            )
        if args.command == "config":
            return cmd_config(args, out)
        if args.command == "doctor":
            from calsync.doctor import cmd_doctor

            return cmd_doctor(_config_path(args.config), out, err)
        return cmd_demo(args, out, err)
    except ConfigError as exc:
        print(f"calsync: the config has problems{_config_origin(args)}:\n{exc}", file=err)
        return EXIT_USAGE
    except (RosterError, StateError) as exc:
        print(f"calsync: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("calsync: interrupted", file=err)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("CALSYNC_DEBUG"):
            traceback.print_exc(file=err)
        print(
            f"calsync: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in calsync. Please report it with the command you ran "
            "(set CALSYNC_DEBUG=1 to see the traceback).",
            file=err,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
