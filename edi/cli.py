"""The ``edi`` command: parse arguments, call one library function, render the result. Nothing imports this module.

Exit codes: 0 the command did its job (rejected flows are a normal outcome); 1 the processor failed (a flow failed
internally, the workspace or its store is unusable, a flow is unknown) or an unexpected error stopped it (a bug:
``-vv`` shows where); 2 bad usage (an unknown option, a value out of range) or bad configuration; 3 (``edi batch``)
the run worked but left files behind that no run can take until an operator sees to them (named in the summary); 75
another processor holds the workspace (try again later). ``edi validate`` exits with the number of files that are
not valid.

Every error is one line on standard error (``Error: ...``), never a traceback, whatever raised it: :class:`Edi` turns
an EdiError, a usage error and any unexpected exception into that line. Everything printed for people goes through
:func:`edi.text.printable` (a file name holding a line feed never forges a row); ``--json`` outputs stay exact.
"""

from __future__ import annotations

import errno
import json
import re
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import structlog
from click.exceptions import Exit

from edi.ack import finding_dict
from edi.check import DEFAULT_LAYERS, Checker, parse_layers
from edi.cli_clients import clients_group
from edi.cli_console import serve_cmd, users_group
from edi.cli_invoices import invoices_cmd
from edi.cli_rows import echo_rows
from edi.cli_status import status_group
from edi.config import Settings, load_settings
from edi.errors import ConfigError, EdiError, WorkspaceBusy
from edi.jobs import day_report, render_report
from edi.logs import configure_logging, short_traceback
from edi.model import RULE_SETS, FlowStatus
from edi.outgoing import send_outgoing
from edi.processor import Outcome
from edi.queues import load_routing
from edi.rebuild import KEPT, RebuildReport, rebuild_store
from edi.runner import BatchReport, PassStopped, collect_less, init_workspace, recover, requeue, run_batch
from edi.store import open_store
from edi.text import printable, printable_all
from edi.tracking import Tracking
from edi.workers import default_workers

log = structlog.get_logger()

LEFT_BEHIND_NAMED = 20  # files left behind that the summary names (the rest are counted)
STATUS_WORDS = {
    FlowStatus.INTEGRATED: "integrated",
    FlowStatus.PARTIALLY_INTEGRATED: "partially integrated",
    FlowStatus.REJECTED: "rejected",
    FlowStatus.FAILED: "failed",
}


class Failure(click.ClickException):
    """An EdiError as a one-line message; configuration errors exit 2, a busy workspace 75, the others 1."""

    def __init__(self, error: EdiError) -> None:
        super().__init__(printable(str(error)))
        code = 2 if isinstance(error, ConfigError) else 75 if isinstance(error, WorkspaceBusy) else 1
        self.exit_code = code  # type: ignore[misc]


class Unexpected(click.ClickException):
    """An exception nobody meant to raise (a bug), as one line that says where to look; exit status 1."""

    def __init__(self, error: Exception, traced: bool = False) -> None:
        what = printable(f"{type(error).__name__}: {error}".rstrip(": "))
        where = "the traceback above shows where" if traced else "run again with -vv to see where"
        super().__init__(f"unexpected error: {what} (a bug in edi: {where}; please report it)")


class Edi(click.Group):
    """The ``edi`` group: whatever a command raises reaches the user as one line on standard error."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an EdiError becomes a :class:`Failure`, any other exception an :class:`Unexpected`
        (with ``-vv``, its short traceback is printed first)."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.Abort, Exit):
            raise
        except EdiError as exc:
            raise Failure(exc) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # the reader went away (`edi flows | head`): click ends quietly
                raise
            raise self._unexpected(ctx, exc) from None
        except Exception as exc:
            raise self._unexpected(ctx, exc) from None

    @staticmethod
    def _unexpected(ctx: click.Context, exc: Exception) -> Unexpected:
        traced = ctx.params.get("verbose", 0) >= 2
        if traced:
            click.echo(short_traceback(exc), err=True)
        return Unexpected(exc, traced)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Parse, run, and exit; every error, a usage error included, is one line (``Error: ...``)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            message = printable(exc.format_message())
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                message += f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"Error: {message}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except Exception as exc:  # the last resort: raised outside any command (while parsing, say)
            click.echo(f"Error: {Unexpected(exc).format_message()}", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class Context:
    """What every command needs: the configuration, read and checked whole (directory, routing, schedule) once, on
    first use, so that a mistake anywhere in it stops every command that reads it."""

    def __init__(self, config: Path, verbose: int) -> None:
        self.config = config
        self.verbose = verbose
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The settings, read and checked on first use (the recipient directory too, and the queues rules name)."""
        if self._settings is None:
            settings = load_settings(self.config)
            load_routing(settings)
            self._settings = settings
            level = ("info", "debug")[min(self.verbose, 2) - 1] if self.verbose else settings.logging.level
            configure_logging(level)
        return self._settings


pass_context = click.make_pass_decorator(Context)


@click.group(cls=Edi, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--config",
    "-c",
    type=click.Path(path_type=Path, dir_okay=False),
    default="config.toml",
    show_default=True,
    envvar="EDI_CONFIG",
    help="Configuration file (also EDI_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="Log one line per flow (-v) or everything (-vv) to stderr.")
@click.version_option(package_name="edi")
@click.pass_context
def main(ctx: click.Context, config: Path, verbose: int) -> None:
    """edi: pick up e-invoice flows, validate them, route them, acknowledge every one.

    \b
    Senders drop files in <workspace>/inbox/<sender>/. `edi batch` (run it from cron)
    claims each finished file, recognises UBL 2.1 / UN/CEFACT CII / Factur-X / ZIP,
    validates it against the official XSD and the business rules that
    validation.rules names (EN 16931 in the shipped config.toml), routes each accepted invoice to its
    recipient's queue and writes one acknowledgement per flow in
    <workspace>/acks/<sender>/<flow_id>.json and .xml, with a CDAR lifecycle message
    per document (<flow_id>.<index>.cdar.xml).

    \b
    Typical session:
      edi init                      create the workspace that config.toml names
      cp invoice.xml var/inbox/acme/
      edi batch                     process what is ready, print a summary
      edi flows --status IN_REJETE  what was rejected
      edi show 20261126T2046        one flow, its findings and history
      edi validate invoice.xml      check files offline, without a workspace
    """
    collect_less()
    ctx.obj = Context(config, verbose)


@main.command()
@pass_context
def init(ctx: Context) -> None:
    """Create the workspace the configuration names (safe to run again).

    \b
    Makes inbox/<sender>/ and acks/<sender>/ for every declared sender, the spool,
    queues/<queue>/{tmp,new,cur}/ for every known queue, archive/, failed/ and the
    SQLite tracking store.

    \b
    Example:
      edi --config /etc/edi/config.toml init
    """
    report = init_workspace(ctx.settings)
    click.echo(f"workspace {printable(str(report.root))}: {len(report.created)} folders created")
    click.echo(f"  senders: {printable(', '.join(report.senders)) or 'none declared'}")
    click.echo(f"  queues:  {printable(', '.join(report.queues)) or 'none yet'}")


MAX_WORKERS = 256  # each worker is a whole processor (~100 MiB, its own compiled schemas and rules)
WORKERS = click.option(
    "--workers",
    type=click.IntRange(min=1, max=MAX_WORKERS),
    default=None,
    show_default="the number of cores; half of them when business rules run",
    help="Processes that claim and process flows in parallel (each claims a file by renaming it, so none is "
    f"taken twice; at most {MAX_WORKERS}). Small runs stay in one process. With business rules, each worker's "
    "rules processes work beside it: one worker keeps two cores busy.",
)


def _workers(given: int | None, settings: Settings) -> int:
    return given if given is not None else min(default_workers(settings), MAX_WORKERS)


@main.command()
@WORKERS
@pass_context
def batch(ctx: Context, workers: int | None) -> None:
    """Process every finished file once, then exit.

    \b
    First finishes what a crash or `edi requeue` left in the spool, then claims each
    finished file of every sender's inbox, oldest first, in groups, with up to
    --workers processes. Files younger than intake.min_age_seconds, dotfiles and
    *.tmp / *.part / *.filepart are left alone. Files that arrive during the run are
    left for the next one. SIGTERM or SIGINT: the groups in hand are finished, no new
    file is taken. Prints a summary; shows a progress bar when stderr is a terminal.
    Then, with [notifications], sends the e-mails that are due (a rejection at once),
    and calls the API's webhooks that are due: a server or a callback that is down
    changes neither the run nor its exit status.

    \b
    Exit status: 0 when the run worked (rejected flows included), 1 when a flow
    failed internally (see `edi flows --status IN_EN_ATTENTE_RETRAITEMENT`, then
    `edi requeue`) or the workspace is unusable, 2 for a bad configuration, 3 when
    the run left files behind that no run can take (a file that cannot be renamed:
    immutable, on another filesystem; a sender folder that is a symbolic link): the
    summary names each with why.

    \b
    Example (crontab, every minute):
      * * * * *  edi --config /etc/edi/config.toml batch
    """
    settings = ctx.settings
    bar: Any = None

    def on_start(total: int) -> None:
        nonlocal bar
        if sys.stderr.isatty() and total:
            bar = click.progressbar(length=total, label="flows", file=sys.stderr, show_pos=True)
            bar.__enter__()

    def on_flow(outcome: Outcome) -> None:
        if bar is not None:
            bar.update(1)

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    stopped: PassStopped | None = None
    try:
        report = run_batch(
            settings,
            workers=_workers(workers, settings),
            on_start=on_start,
            on_flow=on_flow,
            should_stop=stop.is_set,
            keep_outcomes=False,
        )
    except PassStopped as exc:  # what the run did before it could not go on is said first
        report, stopped = exc.report, exc
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(summary(report))
    if stopped is not None:
        raise Failure(stopped)
    for line in send_outgoing(settings):  # after processing, whatever the servers do: the exit status stays
        click.echo(printable(line))
    if report.failed:
        sys.exit(1)
    if report.left_behind:
        sys.exit(3)


def summary(report: BatchReport) -> str:
    """The one-paragraph summary of a batch run."""
    counts = report.by_status
    parts = [f"{counts[s]} {word}" for s, word in STATUS_WORDS.items()]
    lines = [f"{report.flows} flows, {report.documents} documents: {', '.join(parts)}"]
    extra = []
    if report.recovered:
        extra.append(f"{report.recovered} recovered from an earlier run")
    if report.young:
        extra.append(f"{report.young} still arriving (left for the next run)")
    if report.incomplete:
        extra.append(f"{report.incomplete} stalled uploads that look cut short (waiting out their grace period)")
    if report.skipped:
        extra.append(f"{len(report.skipped)} inbox entries skipped (not regular files or no declared sender)")
    if report.stopped:
        extra.append("stopped on request: what is still ready is left for the next run")
    if extra:
        lines.append("; ".join(extra))
    parked = report.failed - report.left_in_spool
    if parked:
        lines.append(
            f"{parked} failed flows are in failed/: see `edi flows --status IN_EN_ATTENTE_RETRAITEMENT`, "
            "then `edi requeue`"
        )
    if report.left_in_spool:
        lines.append(
            f"{report.left_in_spool} failed flows could not be moved to failed/ and stay in the spool: the next run "
            "(or `edi recover`) takes them again"
        )
    if report.unclaimable:
        count = len(report.unclaimable)
        lines.append(f"{count} left behind, that no run can take until an operator sees to them:")
        named = sorted(report.unclaimable.items())
        lines += [f"  {printable(str(path))}: {printable(why)}" for path, why in named[:LEFT_BEHIND_NAMED]]
        if count > LEFT_BEHIND_NAMED:
            lines.append(f"  and {count - LEFT_BEHIND_NAMED} more (each is logged)")
    return "\n".join(lines)


SQLITE_MAX = 2**63 - 1  # the largest integer SQLite holds (a LIMIT past it is not an integer to SQLite)
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime) -> datetime:
    """``2h``, ``3d``, ``1w`` back from ``now``, or an ISO date / date-time (UTC unless it says otherwise), in UTC;
    click.BadParameter for anything else, or for a moment out of the years 1 to 9999."""
    match = _RELATIVE.match(value.strip())
    try:
        if match:
            return (now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})).astimezone(UTC)
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise click.BadParameter("use a duration (30m, 2h, 3d, 1w) or an ISO date (2026-11-26)") from None
    except OverflowError:
        raise click.BadParameter(f"{value!r} is out of the dates a calendar holds (years 1 to 9999)") from None


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """--since as a moment (a bad value is a usage error that names the option)."""
    return parse_since(value, datetime.now(UTC)) if value else None


def _store(ctx: Context) -> Tracking:
    """The workspace's store (an EdiError says why it cannot be used, and what to do)."""
    return open_store(ctx.settings.workspace.layout())


@main.command()
@click.option("--sender", help="Only this sender's flows.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in FlowStatus]),
    help="Only flows in this status.",
)
@click.option("--since", callback=_since, help="Only flows received since: 30m, 2h, 3d, 1w or an ISO date.")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=SQLITE_MAX),
    default=50,
    show_default=True,
    help="At most this many flows.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def flows(
    ctx: Context, sender: str | None, status: str | None, since: datetime | None, limit: int, as_json: bool
) -> None:
    """List flows, newest first.

    \b
    Examples:
      edi flows --since 1d
      edi flows --sender acme --status IN_REJETE
      edi flows --json | jq -r .flow_id
    """
    store = _store(ctx)
    try:
        rows = store.flows(sender=sender, status=status, since=since, limit=limit)
    finally:
        store.close()
    echo_rows(rows, as_json, render_flows)


def render_flows(rows: list[dict[str, Any]]) -> str:
    """Flows as a table for an operator: a header, then one line per flow, whatever its values hold."""
    if not rows:
        return "no flows"
    lines = [f"{'FLOW':29} {'RECEIVED':24} {'SENDER':12} {'STATUS':27} {'DOCS':>7}  FILE"]
    for row in printable_all(rows):
        docs = "" if row["documents_total"] is None else f"{row['documents_accepted']}/{row['documents_total']}"
        lines.append(
            f"{row['flow_id']:29} {row['received_at']:24} {row['sender'][:12]:12} {row['status']:27} {docs:>7}  "
            f"{row['file_name']}"
        )
    return "\n".join(lines)


@main.command()
@click.argument("flow_id")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@pass_context
def show(ctx: Context, flow_id: str, as_json: bool) -> None:
    """Show one flow: its documents (each with its lifecycle: edi's decision, then every status recorded after
    it), findings and history.

    FLOW_ID may be shortened to any unique prefix.

    \b
    Example:
      edi show 20261126T204626
    """
    store = _store(ctx)
    try:
        flow = store.flow(flow_id)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(flow, ensure_ascii=False, indent=2))
        return
    click.echo(render_flow(flow))


def render_flow(record: dict[str, Any]) -> str:
    """A flow record as text for an operator (every value escaped: one value never spans or forges lines)."""
    events = [{**e, "detail": ((e["detail"] or "").splitlines() or [""])[-1]} for e in record["events"]]
    flow = printable_all({**record, "events": events})
    out = [
        f"flow      {flow['flow_id']}",
        f"sender    {flow['sender']}",
        f"file      {flow['file_name']} ({flow['size']} bytes, sha256 {flow['sha256'] or 'not computed'})",
        f"received  {flow['received_at']}" + (f"  processed {flow['processed_at']}" if flow["processed_at"] else ""),
        f"status    {flow['status']}" + (f"  duplicate of {flow['duplicate_of']}" if flow["duplicate_of"] else ""),
    ]
    out += [f"  ! {_finding(f)}" for f in flow["findings"]]
    for doc in flow["documents"]:
        what = " ".join(filter(None, [doc["syntax"], doc["kind"], doc["profile"] and f"({doc['profile']})"]))
        if doc["container"] == "pdf":
            what += f" in a PDF as {doc['embedded_name']}" if doc["embedded_name"] else " PDF"
        out.append(f"document {doc['idx']}: {doc['name']}  {what}".rstrip())
        if doc["attachments"]:
            out.append(f"  also embeds {', '.join(doc['attachments'])}")
        facts = [
            ("invoice", doc["invoice_number"]),
            ("date", doc["issue_date"]),
            ("seller", doc["seller_id"]),
            ("buyer", doc["buyer_id"]),
            ("queue", doc["queue"]),
        ]
        shown = "  ".join(f"{k} {v}" for k, v in facts if v)
        if shown:
            out.append(f"  {shown}")
        out.append(f"  status {doc['status']}" + (f" {doc['reason']}" if doc["reason"] else ""))
        out += [f"  - {_finding(f)}" for f in doc["findings"]]
        if doc.get("lifecycle"):
            out.append("  lifecycle")
            out += [f"    {_step(step)}" for step in doc["lifecycle"]]
    out.append("history")
    for event in flow["events"]:
        who = f"document {event['idx']}" if event["idx"] else "flow"
        out.append(f"  {event['at']}  {who:12} {event['status']:27} {event['detail']}".rstrip())
    return "\n".join(out)


def _step(step: dict[str, Any]) -> str:
    """One status of a document's lifecycle: time, code and label, who set it, reason and text."""
    why = ": ".join(filter(None, [step["reason"], step["text"]]))
    return f"{step['at'] or '':24} {step['status']} {step['label']:24} {step['by']:16} {why}".rstrip()


def _finding(f: dict[str, Any]) -> str:
    where = ", ".join(filter(None, [f["line"] and f"line {f['line']}", f["xpath"]]))
    rule, assert_id = f["rule"], f.get("assert_id")  # a store made by an older edi has no assert_id
    own = f"assert {assert_id}" if assert_id and assert_id != rule else None  # the artefact's id, when not the rule
    named = ", ".join(part for part in (rule, own) if part)
    head = f"{f['severity']} {f['code']}" + (f" [{named}]" if named else "")
    return f"{head} {f['layer']}: {f['message']}" + (f" ({where})" if where else "")


@main.command(name="watch")
@WORKERS
@pass_context
def watch_cmd(ctx: Context, workers: int | None) -> None:
    """Process files as they arrive, until SIGTERM or SIGINT (Ctrl-C).

    \b
    Runs the same pass as `edi batch` whenever the inbox changes: a file its writer
    closed (or renamed into place) is taken as soon as it is structurally whole; other
    files after intake.min_age_seconds. Uploads that stall and look cut short wait out
    intake.incomplete_grace_seconds. A rescan every watch.rescan_seconds catches what
    the filesystem does not report (network mounts). On SIGTERM the flow in hand is
    finished, no new one is taken, and the exit status is 0. With [notifications],
    the e-mails that are due are sent between passes.

    \b
    Only one processor works on a workspace at a time (workspace.exclusive): a second
    one exits with status 75 and says who holds it.

    \b
    Example (systemd: ExecStart=..., KillSignal=SIGTERM):
      edi --config /etc/edi/config.toml -v watch
    """
    from edi.watch import watch  # here, not at the top: every other command starts without watchdog

    settings = ctx.settings
    summary = watch(settings, workers=_workers(workers, settings))
    click.echo(f"watch stopped: {summary.flows} flows in {summary.passes} passes, {summary.failed} failed")


@main.command(name="schedule")
@click.option("--list", "as_list", is_flag=True, help="Show each job, its next run and its last outcome, and exit.")
@pass_context
def schedule_cmd(ctx: Context, as_list: bool) -> None:
    """Run the jobs [[schedule.jobs]] declares, until SIGTERM or SIGINT.

    \b
    Jobs: batch (one pass, as `edi batch`), retention (finished flows older than
    retention.days: archive, acks and tracking rows deleted or moved out), report
    (the daily flow report, for yesterday, in <workspace>/reports/), notify (send the
    e-mail notifications that are due) and digest (yesterday's digests, then notify);
    a batch pass also sends the immediate notifications it queued. They run one at a
    time; a run still going when the next is due is not doubled; runs missed while
    down are run once (coalesced) within misfire_grace_seconds. Each run is logged
    and kept with its outcome.

    \b
    Example (config.toml):
      [schedule]
      timezone = "Europe/Paris"
      [[schedule.jobs]]
      job = "batch"
      every_seconds = 60
      [[schedule.jobs]]
      job = "report"
      cron = "0 6 * * *"

    \b
      edi schedule --list
      edi schedule
    """
    from edi.schedule import Scheduler, plan  # here: every other command starts without APScheduler and asyncio

    settings = ctx.settings
    if as_list:
        planned = plan(settings)
        if not planned:
            click.echo("no [[schedule.jobs]] in the configuration")
        for job in planned:
            last = job.last
            how = f"last {last['outcome']} at {last['finished_at']}: {last['detail']}" if last else "never run"
            click.echo(printable(f"{job.name:14} {job.trigger:40} next {job.next_run}  {how}"))
        return
    Scheduler(settings).run()
    click.echo("schedule stopped")


def _day(ctx: click.Context, param: click.Parameter, value: datetime | None) -> date | None:
    """--day as a date; the last day a date can hold is refused (its report would end on the day after it)."""
    if value is not None and value.date() == date.max:
        raise click.BadParameter(f"the last day a report can cover is {date.max - timedelta(days=1)}")
    return value.date() if value else None


@main.command()
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    callback=_day,
    help="The UTC day to report on (default: yesterday).",
)
@pass_context
def report(ctx: Context, day: date | None) -> None:
    """Write the flow report of one day to <workspace>/reports/ and print it.

    \b
    Counts per status and sender, documents refused per reason, the most broken
    rules, and the flows needing an operator (failed, or still in the spool).

    \b
    Example:
      edi report --day 2026-11-25
    """
    path, content = day_report(ctx.settings, day)
    click.echo(render_report(content), nl=False)
    click.echo(printable(f"written to {path} (and {path.with_suffix('.txt').name})"))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--rules",
    default=",".join(DEFAULT_LAYERS),
    show_default=True,
    help=f"Comma-separated layers to run, from: {', '.join(RULE_SETS)}.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file and line.")
def validate(files: tuple[Path, ...], rules: str, as_json: bool) -> None:
    """Validate XML invoices and Factur-X PDFs offline, without a workspace.

    Prints each file's findings; exits with the number of files that are not valid
    (0 when all are, at most 100), as the KoSIT validator does. Layers run in the
    order xsd, en16931, facturx, br-fr, extended-ctc-fr; a layer that does not
    apply to a file (extended-ctc-fr to another profile, say) is skipped, and the
    JSON says which layers ran.

    \b
    Examples:
      edi validate invoice.xml facture.pdf
      edi validate --rules xsd,en16931,br-fr --json flows/acme/*.xml
      edi validate --rules en16931 fragment.xml     (business rules only)
    """
    try:
        layers = parse_layers(rules)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rules") from None
    invalid = 0
    for result in Checker(layers).check_all(files):
        invalid += not result.valid
        if as_json:
            click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
            continue
        doc = result.document
        what = " ".join(filter(None, [doc.syntax, doc.kind, doc.profile and f"({doc.profile})"]))
        ran = ", ".join(doc.layers) or "no layer"
        line = f"{result.path}: {'valid' if result.valid else 'NOT VALID'}  {what}  [{ran}]".rstrip()
        click.echo(printable(line))
        for finding in doc.findings:
            click.echo(f"  {_finding(printable_all(finding_dict(finding)))}")
    sys.exit(min(invalid, 100))


@main.command(name="notifications")
@click.option("--state", type=click.Choice(["queued", "sent", "failed"]), help="Only notifications in this state.")
@click.option("--sender", help="Only this sender's notifications.")
@click.option(
    "--limit", type=click.IntRange(min=1, max=SQLITE_MAX), default=50, show_default=True, help="At most this many."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--retry", is_flag=True, help="First queue the failed ones again (of --sender, or all), due now.")
@click.option("--send", is_flag=True, help="First send what is due, the digests of the days that ended included.")
@pass_context
def notifications_cmd(
    ctx: Context, state: str | None, sender: str | None, limit: int, as_json: bool, retry: bool, send: bool
) -> None:
    """List the e-mail notifications to senders' contacts, newest first: queued, sent, failed.

    \b
    Each status an invoice gets is queued for its sender's `email` addresses when
    [notifications] has an smtp_host: 213, 501 and 210 (notifications.immediate) at
    once, the others in one digest per sender and day. A failed one was refused by
    the server (5xx) or given up (notifications.give_up_seconds); its last error says
    why. See docs/notifications.md.

    \b
    Examples:
      edi notifications --state failed
      edi notifications --sender acme --json | jq -r .message_id
      edi notifications --retry --send    (after fixing what made them fail)
      edi notifications --send
    """
    from edi.notify.outbox import listing, retry_failed  # here: other commands never load the mail modules

    settings = ctx.settings
    if retry:
        store = _store(ctx)
        try:
            again = retry_failed(store, datetime.now(UTC), sender)
        finally:
            store.close()
        click.echo(f"{again} failed notifications queued again", err=as_json)
    if send:
        if not settings.notifications.enabled:
            raise click.UsageError("notifications are off: set [notifications] smtp_host to send them")
        from edi.notify.send import send_due

        click.echo(printable(send_due(settings, digests=True).summary()), err=as_json)
    store = _store(ctx)
    try:
        rows = store.read(lambda conn: listing(conn, state=state, sender=sender, limit=limit))
    finally:
        store.close()
    echo_rows(rows, as_json, render_notifications)


def render_notifications(rows: list[dict[str, Any]]) -> str:
    """Notifications as a table for an operator: one line each, then its last error, if any, indented."""
    if not rows:
        return "no notifications"
    head = f"{'QUEUED':24} {'SENDER':12} {'STATUS':6} {'MODE':9} {'STATE':6} {'TRIES':>5}  {'WHEN':24}"
    lines = [f"{head} INVOICE / FLOW"]
    for row in printable_all(rows):
        when = row["sent_at"] if row["state"] == "sent" else row["next_attempt_at"] or f"digest of {row['day']}"
        what = row["invoice_number"] or row["detail"].get("file_name") or ""
        lines.append(
            f"{row['queued_at']:24} {row['sender'][:12]:12} {row['status']:6} {row['mode']:9} {row['state']:6} "
            f"{row['attempts']:>5}  {when:24} {what} ({row['flow_id']})"
        )
        if row["last_error"]:
            lines.append(f"  {row['last_error']}")
    return "\n".join(lines)


@main.command(name="requeue")
@click.argument("flow_ids", nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Requeue every flow in failed/.")
@pass_context
def requeue_cmd(ctx: Context, flow_ids: tuple[str, ...], all_failed: bool) -> None:
    """Put flows that failed internally back in the spool; the next `edi batch` processes them.

    \b
    Examples:
      edi requeue 20261126T204626483912-9f3ab2
      edi requeue --failed
    """
    if not flow_ids and not all_failed:
        raise click.UsageError("name the flows to requeue, or use --failed for all of them")
    done = requeue(ctx.settings, list(flow_ids), all_failed=all_failed)
    click.echo(printable(f"{len(done)} flows requeued" + (": " + ", ".join(done) if done else "")))


@main.command(name="recover")
@pass_context
def recover_cmd(ctx: Context) -> None:
    """Finish or roll back what a crash left, and process requeued flows; nothing else.

    \b
    Every `edi batch`, `edi watch` and scheduled batch starts with this: use it alone
    after a crash to bring the workspace back to a clean state before looking at it.
    A processing process keeps its flows in its own folder under spool/active/, locked
    while it lives; the folder of a process that died is taken over, and each of its
    flows either finished (answered and recorded already: only archived) or decided
    again from the start (deliveries are never made twice). Claims recorded but never
    made are forgotten: the file is still in the inbox. Bytes of unknown origin go to
    failed/. Prints how many flows reached an outcome.

    \b
    Exit status: 0, or 1 when a recovered flow failed internally (then `edi requeue`).
    """
    outcomes: list[Outcome] = []
    count = recover(ctx.settings, on_flow=outcomes.append)
    failed = sum(o.status is FlowStatus.FAILED for o in outcomes)
    click.echo(f"{count} flows recovered" + (f", {failed} failed (see failed/, then `edi requeue`)" if failed else ""))
    if failed:
        sys.exit(1)


@main.group(name="store")
def store_group() -> None:
    """The tracking store (tracking.sqlite): rebuild it when it was lost.

    \b
    Example:
      edi store rebuild
    """


@store_group.command(name="rebuild")
@click.option("--force", is_flag=True, help="Replace a store that still opens (its events and job runs are lost).")
@click.option(
    "--partial",
    is_flag=True,
    help="Rebuild without the flows that cannot be read back (their invoices could then be accepted again).",
)
@pass_context
def store_rebuild(ctx: Context, force: bool, partial: bool) -> None:
    """Rebuild a lost tracking store from the workspace's files.

    \b
    When tracking.sqlite was deleted, emptied, corrupted, or not restored with the rest
    of the workspace, every command that needs it refuses to run. This rebuilds it from
    acks/ (flows, documents, findings, statuses, invoice keys), archive/ (size, SHA-256
    and day of each payload, checked) and failed/; flows in the spool are left to
    `edi recover`. Afterwards a re-sent invoice is DOUBLON again and nothing is delivered
    twice. The new store is built in tmp/ and renamed into place. Stop every edi process
    of the workspace first (it takes the processor lock).

    \b
    What no file holds (console accounts, API clients, tokens, webhooks) is lost with
    a lost store: add them again. With --force, a store that still reads and is this
    workspace's own gives them to the new store.

    \b
    Exit status: 0 rebuilt; 1 refused (a store that opens, without --force; flows that
    cannot be read back, without --partial).

    \b
    Example:
      edi store rebuild
    """
    try:
        report = rebuild_store(ctx.settings, force=force, partial=partial)
    except EdiError as exc:
        raise Failure(exc) from None
    click.echo(render_rebuild(report))


def render_rebuild(report: RebuildReport) -> str:
    """What a rebuild found and wrote, for an operator."""
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(report.by_status.items()))
    documents = f"{report.documents} documents, {report.invoice_keys} invoice keys"
    differing = f", {len(report.differing)} differing from it" if report.differing else ""
    lines = [
        f"{'replaced' if report.replaced else 'rebuilt'} {printable(str(report.store))} in {report.seconds:.1f} s",
        f"  acknowledgements: {report.flows} flows" + (f" ({statuses})" if statuses else "") + f", {documents}",
        f"  archive: {report.archived} payloads matched to their acknowledgement{differing}",
        f"  failed/: {report.failed} flows recorded as {FlowStatus.FAILED} (see `edi requeue`)",
    ]
    lines += [f"    differs: {printable(line)}" for line in report.differing[:10]]
    spool = report.spool
    if spool.total():
        what = [
            (spool["answered"], "answered: archived"),
            (spool["requeued"], "requeued: processed"),
            (spool["kept"], "with the old store's record: decided again"),
            (spool["unknown"], "with no record of their sender: moved to failed/ for an operator"),
        ]
        said = "; ".join(f"{n} {text}" for n, text in what if n)
        lines.append(f"  spool: {sum(spool.values())} flows left to `edi recover` ({said})")
    for why, paths in (("unreadable acknowledgement", report.unreadable), ("no acknowledgement", report.unanswered)):
        if paths:
            lines.append(f"  left out ({why}): {len(paths)} flows, e.g. {printable(str(paths[0]))}")
    if report.replaced:
        if report.not_kept:
            lines.append(
                f"  kept from the old store: nothing, as {printable(report.not_kept)}: add the console accounts and"
                " the API clients again"
            )
        else:
            kept = "; ".join(f"{what} {report.kept[table]}" for table, what in KEPT.items() if report.kept[table])
            lines.append(f"  kept from the old store: {kept or 'no accounts, API clients or webhooks (it had none)'}")
    return "\n".join(lines)


main.add_command(invoices_cmd)
main.add_command(users_group)
main.add_command(clients_group)
main.add_command(serve_cmd)
main.add_command(status_group)
