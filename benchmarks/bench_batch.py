"""Throughput of `edi batch` on realistic invoices, against what the same machine does in the same run without edi.

Generates N single-invoice flows (benchmarks/invoices.py: UBL and CII, invoices and credit notes, a few lines to
hundreds, consistent totals and VAT breakdown; one in twenty invalid under the XSD, one in fifty valid under it but
breaking BR-CO-16; with --small, one-line invoices of 4.8-6.8 KB), then measures, on the same files:

  bare loops  in this process, nothing written, nothing recorded:
                xsd        parse each file with lxml and validate it against the XSD the catalogue names (schemas
                           compiled once): the ceiling for XSD-only validation;
                official   with business rules in --rules (e.g. en16931): the same, then Saxon (saxonche) parses the
                           file's original bytes (decoded by their declared encoding) and runs the XSLT the catalogue
                           names for the document in each rule set, as shipped (compiled once beforehand): what a
                           user's own loop over the official artefacts does;
                optimised  the same with edi's optimised stylesheets (edi.validate.xslt_optimise, compiled once, the
                           code list parameter set as edi.validate.saxon sets it): what edi's rules cost without edi.
                files      no parsing at all: per flow, the file moves and writes edi's answer takes (the payload
                           renamed out of the inbox and read; its delivery, CDAR message and two acknowledgements each
                           written to a temporary file, with exact permissions, and renamed into place; the payload
                           renamed to the archive; syncfs every GROUP_FLOWS flows), on a workspace of its own: the
                           floor of any edi run on this disk. Run once per round, before the first edi run; edi's
                           time per flow beyond the xsd loop and this one together is given too.
              (benchmarks/stylesheets.py compiles both kinds.) Every loop runs before and after each edi run, and each
              run is compared with the mean of the two around it, for each loop (its rate over the loop's, and its
              time per flow beyond the loop's, in us): the speed of a shared VM drifts by tens of percent within
              minutes.
  edi batch   the real command (a new process, as cron runs it) on the files dropped in a fresh workspace, with
              `--workers W` for each W asked: claims, validates, routes, delivers, acknowledges, records, archives,
              every file made durable (fsync). Peak memory: the sum of the resident sizes of the edi processes, and
              each process's own peak (the command, each worker, each rules process: printed largest first), sampled
              every 20 ms; CPU time (user + system) of the whole run and of each process, and the cores it kept busy
              on average (CPU time over wall time); throughput in each tenth of the run (the first and the last
              compared) comes from the acknowledgements' times. When 1 and more workers are asked, 1 worker runs
              again after the others, and W workers are compared with the mean of the two 1-worker runs (drift
              between runs cancels out to first order).
  bare loops  each loop also in W processes at once, on W slices of the files, for each W > 1 asked (each process
  in W procs  warmed up first: schemas and stylesheets compiled), compared with the mean of one process just before
              and just after: what the machine gives W CPU-bound processes (the ceiling for W workers: cores may
              share caches, or be shared by the host). edi's W workers / 1 worker is then also given over that ratio.
  separate    W separate `edi batch --workers 1` runs at once, each on a workspace of its own holding 1/W of the
  runs        files, for each W > 1 asked (between the W-worker run and the second 1-worker run): what the machine
              gives W processes doing edi's work, sharing nothing; W workers sharing one workspace are also given
              over it.
  cron-sized  at the end of each round, `edi batch` as cron runs it (a new process, the configured workers) on the
  run         first --cron files (default 100) in a fresh workspace: wall time, stylesheet compilation included, and
              CPU time (what two cores can do in the wall time asked for bounds it).
  xmlcheck    a loop a user might script instead: the `facturx-xmlcheck` command of the factur-x package once per
              file (it checks the XSD and the EN 16931 Schematron), on a sample of the files.

The files are dropped as copies (a file of its own per flow, as an upload gives). Measuring starts once creating a
file costs what it does on a quiet disk: for minutes after many files were deleted, on ext4 without a journal, and
while the kernel caches millions of inodes, it costs ten times as much (wait_for_a_quiet_disk).

Usage (docs/performance.md gives the numbers this printed):

  .venv/bin/python benchmarks/bench_batch.py [--flows 20000] [--workers 1 2] [--rules xsd en16931] [--rounds 1]
                                             [--small] [--cron 100] [--xmlcheck 100]

  --rules     the validation layers (validation.rules), space- or comma-separated: "xsd" (default) runs the XSD
              bare loop only; "xsd en16931" (as shipped) also the official and optimised Saxon loops
  --small     one-line UBL and CII invoices only (the issue's "tiny invoices" cases)
  --cron N    files in the cron-sized run (0: none)
"""

from __future__ import annotations

import argparse
import compileall
import functools
import gc
import multiprocessing
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import stylesheets
from benchmarks.invoices import directory_without_rules, write_flows
from edi.ingest.recognise import recognise
from edi.runner import GROUP_FLOWS
from edi.spool import SYNCFS
from edi.validate.catalogue import Catalogue, load_catalogue
from edi.validate.saxon import quiet

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
incomplete_grace_seconds = 0  # the files are old: one cut short is a truncated file, not an upload in progress
[[senders]]
id = "bench"
sellers = ["*"]
[routing]
directory = "{directory}"
[validation]
rules = {rules}
[logging]
level = "warning"
"""


_SCHEMAS: dict[Path, etree.XMLSchema] = {}


def into_the_page_cache(paths: list[Path]) -> None:
    """Read ``paths`` once, untimed, so that a bare loop reads them from memory: in a long edi run the files the bare
    loop reads leave the page cache (this VM reclaims pages unused for a minute), and the loop after it would read
    them from the disk (100,000 flows: 2,075 flows/s after, 3,136 before)."""
    for path in paths:
        path.read_bytes()


# the bare loops: "xsd" parses and validates against the XSD; "official" and "optimised" also run the rule sets asked
# beyond xsd, with the XSLTs as shipped or as edi optimises them (benchmarks/stylesheets.py)
LOOPS = {
    "xsd": "bare lxml loop (parse + XSD)",
    "official": "bare loop, official XSLTs",
    "optimised": "bare loop, edi's XSLTs",
}


def bare_loop(paths: list[Path], warm: bool = True, rules: tuple[str, ...] = (), how: str = "xsd") -> tuple[float, int]:
    """Seconds for parse + pick the schema + validate over ``paths`` (read from memory: ``warm`` reads them first,
    untimed), and how many were valid under the XSD. With ``how`` "official" or "optimised", each document also goes
    through the XSLT the catalogue names for it in each rule set of ``rules`` but xsd, as edi does (even when the XSD
    fails): its original bytes, decoded by their declared encoding, parsed once by Saxon, then transformed by each
    XSLT (compiled once per process, the first time a loop meets it: the bench warms them up)."""
    if warm:
        into_the_page_cache(paths)
    catalogue = load_catalogue()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    rule_sets = [r for r in rules if r != "xsd"] if how != "xsd" else []
    with quiet():  # Saxon's own printing of a dynamic error kept off standard error, as edi keeps it
        started = time.perf_counter()
        valid = _loop(paths, parser, catalogue, rule_sets, how)
        return time.perf_counter() - started, valid


def _loop(paths: list[Path], parser: etree.XMLParser, catalogue: Catalogue, rule_sets: list[str], how: str) -> int:
    """The body of :func:`bare_loop`: how many of ``paths`` are valid under the XSD."""
    schemas = _SCHEMAS  # compiled once per process, the first time a loop meets them (the bench warms them up)
    compiled = stylesheets.COMPILERS.get(how)
    valid = 0
    for path in paths:
        data = path.read_bytes()
        try:
            tree = etree.fromstring(data, parser).getroottree()
        except etree.XMLSyntaxError:
            continue
        found = recognise(tree.getroot())
        entry = catalogue.xsd_for(found.syntax, found.kind, found.profile) if found else None
        if entry is None or found is None:
            continue
        if entry.schema not in schemas:
            schemas[entry.schema] = etree.XMLSchema(etree.parse(str(entry.schema)))
        valid += schemas[entry.schema].validate(tree)
        xslts = [
            r.xslt for r in (catalogue.rules_for(s, found.syntax, found.profile or "unknown") for s in rule_sets) if r
        ]
        if xslts and compiled:
            try:
                node = stylesheets.parse(data.decode(tree.docinfo.encoding or "utf-8"))
                for xslt in xslts:
                    compiled(xslt).transform_to_string(xdm_node=node)
            except Exception:  # a dynamic error (a date that is not one): edi would say the layer did not run
                continue
    return valid


ANSWER = b"<answer/>" + b" " * 2039  # a CDAR message or an acknowledgement: 2 KiB (they are 1.5-3 KB)


def files_loop(paths: list[Path], folder: Path) -> float:
    """Seconds for the file work edi's answer to each of ``paths`` takes, without edi (copies dropped in a workspace
    of its own in ``folder`` first, untimed): the payload renamed out of the inbox and read; its delivery (the
    payload's bytes), CDAR message and two acknowledgements (2 KiB each) each written to a temporary file (created
    0600, then given its mode: 0640 for the answers) and renamed into its folder; the payload renamed to the
    archive; ``syncfs`` after every GROUP_FLOWS flows and at the end, as edi's barrier is (fsync of each file and
    folder where there is no syncfs)."""
    folders = {name: folder / name for name in ("inbox", "spool", "tmp", "queue", "acks", "archive")}
    for path in folders.values():
        path.mkdir(parents=True)
    drop(paths, folders["inbox"])
    root = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    touched: list[Path] = []

    def barrier() -> None:
        if SYNCFS is not None:
            SYNCFS(root)
            return
        for path in [*touched, *folders.values()]:
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        touched.clear()

    def write(path: Path, data: bytes, mode: int | None) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600 if mode else 0o666)
        os.write(fd, data)
        if mode:
            os.fchmod(fd, mode)
        os.close(fd)

    try:
        started = time.perf_counter()
        for number, path in enumerate(paths, 1):
            flow_id = f"F{number:09d}-{secrets.token_hex(3)}"
            claimed = (folders["inbox"] / path.name).rename(folders["spool"] / flow_id)
            payload = claimed.read_bytes()
            for target, data, mode in (
                (folders["queue"] / f"{flow_id}.0001.xml", payload, None),
                (folders["acks"] / f"{flow_id}.0001.cdar.xml", ANSWER, 0o640),
                (folders["acks"] / f"{flow_id}.json", ANSWER, 0o640),
                (folders["acks"] / f"{flow_id}.xml", ANSWER, 0o640),
            ):
                tmp = folders["tmp"] / f".{target.name}.tmp"
                write(tmp, data, mode)
                tmp.rename(target)
                touched.append(target)
            claimed.rename(folders["archive"] / flow_id)
            if number % GROUP_FLOWS == 0:
                barrier()
        barrier()
        return time.perf_counter() - started
    finally:
        os.close(root)


def _ready(pause: float) -> int:
    """This process's id, after ``pause`` seconds (a task only a process done warming up takes)."""
    time.sleep(pause)
    return os.getpid()


def bare_loop_parallel(paths: list[Path], processes: int, rules: tuple[str, ...] = (), how: str = "xsd") -> float:
    """Seconds for the bare loop ``how`` over ``paths`` split between ``processes`` processes running at once (started
    and warmed up first: schemas and stylesheets compiled): what this machine gives that many CPU-bound processes,
    the ceiling for as many workers."""
    context = multiprocessing.get_context("spawn")
    warm = functools.partial(bare_loop, paths[:60], False, rules, how)
    with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=warm) as pool:
        while len(set(pool.map(_ready, [0.05] * 4 * processes))) < processes:
            continue  # a process still warming up takes no task: every one answered, every one is ready
        into_the_page_cache(paths)
        started = time.perf_counter()
        loop = functools.partial(bare_loop, warm=False, rules=rules, how=how)
        list(pool.map(loop, [paths[n::processes] for n in range(processes)]))
        return time.perf_counter() - started


def _tree(root: int) -> set[int]:
    """Process ``root`` and all its descendants (Linux /proc: every process's parent is read, ~2 ms)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with Path(f"/proc/{entry.name}/stat").open("rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    family, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in family]
        family.update(children)
        frontier += children
    return family


PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def _sample(pid: int) -> tuple[int, float] | None:
    """Resident bytes of process ``pid`` and the CPU seconds (user + system) it has used so far, from one read of
    /proc/<pid>/stat; None once it has ended."""
    try:
        with Path(f"/proc/{pid}/stat").open("rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # from field 3 (state) on: utime 14, stime 15, rss 24
        return int(fields[21]) * PAGE, (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def _role(pid: int, root: int) -> str:
    """What an edi process is, from its command line: the command itself, a worker, the rules process, ..."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    if pid == root:
        return "edi batch"
    code = command[command.index(b"-c") + 1] if b"-c" in command[:-1] else b""  # python [-B ...] -c CODE ...
    if b"resource_tracker" in code:
        return "resource tracker"
    if b"spawn_main" in code:
        return "worker"
    return "rules process" if code else b" ".join(command).decode(errors="replace")[:40]


class PeakMemory(threading.Thread):
    """Samples the resident size of a process tree every 20 ms until stopped; keeps the peak of the sum and of each
    process, and the CPU time each process had used when last seen (up to 20 ms short of its whole). The tree is
    looked up again every second (workers start after their parent): looking it up every time would take ~10 % of a
    core, which the edi processes need when there are as many of them as cores."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()
        self.each: dict[int, int] = {}  # pid -> its peak resident bytes
        self.cpu: dict[int, float] = {}  # pid -> its CPU seconds when last seen
        self.roles: dict[int, str] = {}

    def run(self) -> None:
        family, looked = {self.pid}, 0.0
        while not self.done.wait(0.02):
            if time.monotonic() - looked >= 1.0:
                family, looked = _tree(self.pid), time.monotonic()
                for pid in family - self.roles.keys():
                    self.roles[pid] = _role(pid, self.pid)
            samples = {pid: sample for pid in family if (sample := _sample(pid)) is not None}
            self.peak = max(self.peak, sum(size for size, _ in samples.values()))
            for pid, (size, used) in samples.items():
                self.each[pid] = max(self.each.get(pid, 0), size)
                self.cpu[pid] = used

    def per_process(self) -> str:
        """Each process's peak, in MiB, largest first, e.g. "worker 412, rules process 398, edi batch 95"."""
        peaks = sorted(((size, self.roles.get(pid, "?")) for pid, size in self.each.items() if size), reverse=True)
        return ", ".join(f"{role} {size / 2**20:.0f}" for size, role in peaks)

    def cpu_per_process(self) -> str:
        """Each process's CPU seconds, largest first, e.g. "rules process 3.0, edi batch 2.3, rules process 2.0"."""
        used = sorted(((s, self.roles.get(pid, "?")) for pid, s in self.cpu.items() if s), reverse=True)
        return ", ".join(f"{role} {seconds:.2f}" for seconds, role in used)


QUIET_CREATE_US = 40.0  # creating a 4 KiB file on this disk when nothing was deleted lately: ~13-20 us
RECENTLY_DELETED_SECONDS = 360  # how long ext4 without a journal looks past a deleted inode (dirty table block)


def create_cost(folder: Path, files: int = 500) -> float:
    """Microseconds to create, write (4 KiB) and close one file in a new subfolder of ``folder`` (the files are
    kept: deleting them would slow the next creations in their block group). Only the system calls are timed: the
    names are made beforehand and the cycle collector is off (in a process holding 100,000 paths, its collections
    made a file seem to cost 150-200 us instead of ~35)."""
    probe = os.open(tempfile.mkdtemp(prefix="probe-", dir=folder), os.O_RDONLY | os.O_DIRECTORY)
    names = [str(number) for number in range(files)]
    data = b"\0" * 4096
    collecting = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        for name in names:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=probe)
            os.write(fd, data)
            os.close(fd)
        return (time.perf_counter() - started) / files * 1e6
    finally:
        if collecting:
            gc.enable()
        os.close(probe)


def cached_inodes() -> int | None:
    """How many inodes the kernel holds in memory (Linux: /proc/sys/fs/inode-nr), or None where it does not say."""
    try:
        return int(Path("/proc/sys/fs/inode-nr").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_for_a_quiet_disk(folder: Path, longest: float = 2 * RECENTLY_DELETED_SECONDS) -> None:
    """Wait, up to ``longest`` seconds, until creating a file in ``folder`` costs what it does on a quiet disk.

    Two states of this VM make each file created cost ten times as much, in the kernel (edi creates three per flow),
    and a run measured then says more about them than about edi. On ext4 without a journal, the inode allocator
    looks past every free inode deleted in the last minute (six while its inode table block is dirty), checking
    each one's deletion time: for minutes after many files were deleted (a previous bench cleaning up after
    itself), a file costs 150-400 us instead of ~20. And with millions of inodes in the kernel's inode cache (the
    files of earlier benches, kept while memory lasts), each new inode walks a long chain of its hash table: ~5
    million cached, 200-370 us a file; that state does not pass with time (``sync; echo 2 >
    /proc/sys/vm/drop_caches``, as root, ends it). Prints what it waits for; goes on with a warning if the disk
    does not settle."""
    deadline = time.monotonic() + longest
    while True:
        cost = create_cost(folder)
        inodes = cached_inodes()
        cached = f"; {inodes:,} inodes cached by the kernel" if inodes is not None else ""
        if cost <= QUIET_CREATE_US:
            print(f"creating a file: {cost:.0f} us (a quiet disk{cached})", flush=True)
            return
        if time.monotonic() >= deadline:
            print(
                f"WARNING: creating a file still costs {cost:.0f} us (quiet: {QUIET_CREATE_US:.0f} or less{cached}):"
                " measuring"
            )
            return
        print(
            f"creating a file: {cost:.0f} us, not the {QUIET_CREATE_US:.0f} or less of a quiet disk (files deleted in"
            f" the last minutes, or millions of inodes cached{cached}): waiting 30 s",
            flush=True,
        )
        time.sleep(30)


# with --notify (bench_versions.py): every outcome queues a notification for the sender's address (200s: digest rows,
# nothing to send at the end); the server named is never reached
NOTIFY = """
[notifications]
smtp_host = "127.0.0.1"
smtp_port = 9
security = "none"
from_address = "edi@bench.example"
"""


def new_workspace(work: Path, rules: list[str], code: Path | None = None, notify: bool = False) -> list[str]:
    """Configure a workspace in ``work`` (sender ``bench``, a directory without rules; ``notify``: with notifications
    on, the sender with an address) and run `edi init`; the `edi` command line for it (``python -m edi``: run it from
    ``code``, if given, to use the edi found there)."""
    directory = directory_without_rules(work / "directory.toml")
    config = work / "config.toml"
    text = CONFIG.format(directory=directory, rules=rules).replace("'", '"')
    if notify:
        text = text.replace('sellers = ["*"]', 'sellers = ["*"]\nemail = ["bench@bench.example"]', 1) + NOTIFY
    config.write_text(text, encoding="utf-8")
    edi = [sys.executable, "-m", "edi", "--config", str(config)]
    subprocess.run([*edi, "init"], cwd=code, check=True, capture_output=True)
    return edi


def drop(paths: list[Path], inbox: Path, prefix: str = "") -> None:
    """Put copies of ``paths`` in ``inbox`` (names prefixed), old enough for any ``min_age_seconds``, and on disk.
    Copies, each a file of its own as a sender's upload is, not hard links to the generated files: edi drops a
    payload's pages from the page cache once it has read it, and the bare loop would then read its files from the
    disk."""
    old = time.time() - 60
    for path in paths:
        target = inbox / f"{prefix}{path.name}"
        shutil.copyfile(path, target)
        os.utime(target, (old, old))
    os.sync()  # the copies' writeback is not edi's to pay


def run_edi(work: Path, paths: list[Path], workers: int, rules: list[str]) -> dict[str, float]:
    """Run `edi batch --workers W` over ``paths`` dropped in a fresh workspace; what it measured."""
    work.mkdir(parents=True)  # a fresh folder; earlier runs are removed only at the end (deleting is not free)
    edi = new_workspace(work, rules)
    drop(paths, work / "ws" / "inbox" / "bench")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*edi, "batch", *(["--workers", str(workers)] if workers else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sampler = PeakMemory(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # edi and the processes it started and waited for
    sampler.done.set()
    sampler.join()
    # a worker's rules processes are not waited for by it (they end when it does): only the sampler sees them
    cpu = max(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, sum(sampler.cpu.values()))
    if proc.returncode not in (0, 1):
        raise SystemExit(f"edi batch failed ({proc.returncode}): {err.decode()[-2000:]}")
    acks = sorted(p.stat().st_mtime for p in (work / "ws" / "acks" / "bench").glob("*.json"))
    if len(acks) != len(paths):
        raise SystemExit(f"{len(acks)} acknowledgements for {len(paths)} flows: {err.decode()[-2000:]}")
    tenth = max(1, len(acks) // 10)
    spans = [acks[min((i + 1) * tenth, len(acks) - 1)] - acks[i * tenth] for i in range(9)]
    spans.append(acks[-1] - acks[-1 - tenth])
    # a file's time moves in steps of a few ms (the kernel's coarse clock): a tenth of a short run may span none
    tenths = [tenth / span if span > 0 else float("nan") for span in spans]
    first, last = tenths[0], tenths[-1]
    delivered = sum(1 for _ in (work / "ws" / "queues").glob("*/new/*"))
    summary = out.decode().strip().splitlines()[0] if out.strip() else "(nothing)"
    print(f"    edi says: {summary}")
    print(f"    flows/s in each tenth of the run: {' '.join(f'{rate:.0f}' for rate in tenths)}")
    print(f"    peak memory of each process, MiB: {sampler.per_process()}")
    print(
        f"    CPU: {cpu:.2f} s in all (user + system) in {elapsed:.2f} s = {cpu / elapsed:.2f} of {os.cpu_count()}"
        f" cores busy on average; each process, s: {sampler.cpu_per_process()}"
    )
    documents = re.search(r"(\d+) documents", summary)
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "peak": sampler.peak,
        "largest": max(sampler.each.values(), default=0),
        "first": first,
        "last": last,
        "delivered": delivered,
        "documents": int(documents.group(1)) if documents else 0,
    }


def independent_runs(work: Path, paths: list[Path], processes: int, rules: list[str]) -> float:
    """Seconds for ``processes`` separate `edi batch --workers 1` runs at once, each on its own workspace holding
    its share of ``paths`` (nothing shared: no store, folder or lock), until the last one ends: what this machine
    gives W processes doing edi's work, against which W workers sharing one workspace are measured."""
    commands = []
    for number in range(processes):
        folder = work / f"part-{number + 1}"
        folder.mkdir(parents=True)
        edi = new_workspace(folder, rules)
        drop(paths[number::processes], folder / "ws" / "inbox" / "bench")
        commands.append([*edi, "batch", "--workers", "1"])
    started = time.perf_counter()
    running = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]
    errors = [proc.communicate()[1] for proc in running]
    elapsed = time.perf_counter() - started
    for proc, err in zip(running, errors, strict=True):
        if proc.returncode not in (0, 1):
            raise SystemExit(f"edi batch failed ({proc.returncode}): {err.decode()[-2000:]}")
    answered = sum(1 for _ in work.glob("part-*/ws/acks/bench/*.json"))
    if answered != len(paths):
        raise SystemExit(f"{answered} acknowledgements for {len(paths)} flows")
    return elapsed


def xmlcheck_loop(paths: list[Path]) -> float:
    """Seconds for one `facturx-xmlcheck` run per file."""
    command = shutil.which("facturx-xmlcheck", path=str(Path(sys.executable).parent)) or "facturx-xmlcheck"
    started = time.perf_counter()
    for path in paths:
        subprocess.run([command, "-l", "error", str(path)], capture_output=True, check=False)
    return time.perf_counter() - started


def loops_for(rules: list[str]) -> list[str]:
    """The bare loops to run with ``rules``: the XSD one, and with business rules the two Saxon ones."""
    return ["xsd", "official", "optimised"] if any(r != "xsd" for r in rules) else ["xsd"]


def yardstick(paths: list[Path], rules: list[str]) -> dict[str, float]:
    """flows/s of each bare loop over ``paths``, one after the other."""
    rates = {}
    for how in loops_for(rules):
        seconds, valid = bare_loop(paths, rules=tuple(rules), how=how)
        rates[how] = len(paths) / seconds
        print(f"  {LOOPS[how] + ':':34} {seconds:8.2f} s  {rates[how]:8.0f} flows/s   ({valid} valid under the XSD)")
    return rates


def one_round(work: Path, paths: list[Path], args: argparse.Namespace) -> dict[str, float]:
    """Every edi run asked for, each set between two runs of the bare loops, then each bare loop in W processes, then
    a cron-sized run; what it gave (ratios, for the summary of several rounds)."""
    flows = len(paths)
    loops = loops_for(args.rules)
    floor = files_loop(paths, work / "files-floor") / flows  # seconds per flow
    print(
        f"  {'file work of the answers, no edi:':34} {floor * flows:8.2f} s  {1 / floor:8.0f} flows/s   "
        f"({floor * 1e6:.0f} us per flow: the floor of edi's time per flow beyond the bare lxml loop on this disk)"
    )
    bare_rates = [yardstick(paths, args.rules)]
    rates: dict[int, list[float]] = {}
    measured: dict[str, list[float]] = {}
    order = list(args.workers)
    independent: dict[int, float] = {}  # W -> flows/s of W separate one-worker runs at once
    if 1 in order and any(w > 1 for w in order):
        order += [-w for w in order if w > 1]  # W separate one-worker runs at once, on W workspaces
        order.append(1)  # once more after the others: W workers / 1 worker is then drift-free to first order
    for number, workers in enumerate(order):
        if workers < 0:
            seconds = independent_runs(work / f"run-{number + 1}-separate{-workers}", paths, -workers, args.rules)
            independent[-workers] = flows / seconds
            print(
                f"  {-workers} separate edi batch --workers 1, on {-workers} workspaces of {flows // -workers} flows, "
                f"at once: {seconds:8.2f} s  {flows / seconds:8.0f} flows/s"
            )
            bare_rates.append(yardstick(paths, args.rules))
            continue
        got = run_edi(work / f"run-{number + 1}-w{workers}", paths, workers, args.rules)
        rate = flows / got["seconds"]
        rates.setdefault(workers, []).append(rate)
        bare_rates.append(yardstick(paths, args.rules))  # again: this VM's speed drifts, so each run is set between
        around = {how: (bare_rates[-2][how] + bare_rates[-1][how]) / 2 for how in loops}  # two runs of the loops
        for how in loops:
            measured.setdefault(f"{workers} worker(s) / {LOOPS[how]}", []).append(rate / around[how])
            overhead = (1 / rate - 1 / around[how]) * 1e6  # edi's time per flow beyond the loop's
            measured.setdefault(f"{workers} worker(s), us per flow beyond the {LOOPS[how]}", []).append(overhead)
        beyond = (1 / rate - 1 / around["xsd"] - floor) * 1e6  # neither parsing and the XSD nor the file work
        measured.setdefault(f"{workers} worker(s), us per flow beyond the xsd loop and the file work", []).append(
            beyond
        )
        for key, value in (
            (f"{workers} worker(s), last tenth / first tenth", got["last"] / got["first"]),
            (f"{workers} worker(s), peak MiB (all processes)", got["peak"] / 2**20),
            (f"{workers} worker(s), peak MiB (largest process)", got["largest"] / 2**20),
            (f"{workers} worker(s), cores busy on average", got["cpu"] / got["seconds"]),
        ):
            measured.setdefault(key, []).append(value)
        shares = "; ".join(
            f"{rate / around[how]:.2f}x the {LOOPS[how]} ({bare_rates[-2][how]:.0f} and {bare_rates[-1][how]:.0f}"
            f" flows/s just before and after; {(1 / rate - 1 / around[how]) * 1e6:.0f} us more per flow)"
            for how in loops
        )
        print(
            f"  edi batch --workers {workers}:        {got['seconds']:8.2f} s  {rate:8.0f} flows/s  = {shares}; "
            f"{got['documents'] / got['seconds']:.0f} documents/s, {int(got['delivered'])} delivered; "
            f"{beyond:.0f} us per flow beyond the bare lxml loop and the file work together; "
            f"peak memory {got['peak'] / 2**20:.0f} MiB (largest process {got['largest'] / 2**20:.0f}); first tenth "
            f"{got['first']:.0f} flows/s, last tenth {got['last']:.0f} flows/s ({got['last'] / got['first'] - 1:+.0%})"
        )
    found = {key: statistics.mean(values) for key, values in measured.items()}
    if 1 in rates:
        one = statistics.mean(rates[1])
        for workers, rate in ((w, r[0]) for w, r in rates.items() if w != 1):
            found[f"{workers} workers / 1 worker"] = rate / one
            print(
                f"  {workers} workers / 1 worker: {rate / one:.2f}x (the mean of the 1-worker runs before and after: "
                f"{' and '.join(f'{r:.0f}' for r in rates[1])} flows/s)"
            )
            if workers in independent:
                found[f"{workers} separate runs / 1 worker"] = independent[workers] / one
                found[f"{workers} workers / {workers} separate runs"] = rate / independent[workers]
                print(
                    f"  {workers} separate one-worker runs / 1 worker: {independent[workers] / one:.2f}x; edi's "
                    f"{workers} workers on one workspace get {rate / independent[workers]:.0%} of that"
                )
    for workers in sorted({w for w in args.workers if w > 1}):
        for how in loops:
            before, _ = bare_loop(paths, rules=tuple(args.rules), how=how)
            seconds = bare_loop_parallel(paths, workers, tuple(args.rules), how)
            after, _ = bare_loop(paths, rules=tuple(args.rules), how=how)
            one = (before + after) / 2  # one process, just before and just after: drift cancels out to first order
            scale = one / seconds
            found[f"{LOOPS[how]}, {workers} processes / 1"] = scale
            print(
                f"  {LOOPS[how]} in {workers} processes at once: {seconds:8.2f} s  {flows / seconds:8.0f} flows/s "
                f"= {scale:.2f}x one process just before and after it ({flows / before:.0f} and {flows / after:.0f} "
                f"flows/s; what this machine gives {workers} CPU-bound processes)"
            )
            if f"{workers} workers / 1 worker" in found:
                share = found[f"{workers} workers / 1 worker"] / scale
                found[f"{workers} workers / 1 worker, over the {LOOPS[how]}'s {workers} processes / 1"] = share
                print(f"  edi's {workers} workers / 1 worker over that {workers} processes / 1: {share:.0%}")
    if args.cron:
        files = paths[: args.cron]
        print(f"  cron-sized run: edi batch (a new process, workers as configured: default) on {len(files)} files")
        got = run_edi(work / "cron", files, 0, args.rules)
        found[f"cron-sized run ({len(files)} files), seconds"] = got["seconds"]
        found[f"cron-sized run ({len(files)} files), CPU seconds"] = got["cpu"]
        print(
            f"  cron-sized run: {got['seconds']:.2f} s wall, compiling included; {got['cpu']:.2f} s of CPU: at least "
            f"{got['cpu'] / (os.cpu_count() or 1):.2f} s wall on {os.cpu_count()} cores"
        )
    return found


def with_bytecode(code: Path) -> None:
    """Compile the ``edi`` package of ``code`` to bytecode, as an installed package has it: this environment sets
    PYTHONDONTWRITEBYTECODE, so without it every edi process (workers and rules processes included) would compile
    edi's source again at start, a cost no installed edi pays."""
    compileall.compile_dir(str(code / "edi"), quiet=1)


def main() -> None:
    """Generate, measure, print."""
    with_bytecode(Path(__file__).resolve().parent.parent)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=20000, help="how many flows (default 20000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run (default 1 2)")
    parser.add_argument(
        "--rules", nargs="+", default=["xsd"], help='validation.rules: "xsd en16931" or "xsd,en16931" (default "xsd")'
    )
    parser.add_argument("--small", action="store_true", help="one-line invoices only (4.8-6.8 KB)")
    parser.add_argument(
        "--cron", type=int, default=100, help="files for the cron-sized run at the end of each round (0: skip)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="measure this many times, then give the medians")
    parser.add_argument("--xmlcheck", type=int, default=100, help="files for the facturx-xmlcheck loop (0: skip)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work", type=Path, help="where to work, kept afterwards (default: a temporary folder)")
    args = parser.parse_args()
    args.rules = [rule for given in args.rules for rule in given.split(",") if rule]
    work = args.work or Path(tempfile.mkdtemp(prefix="edi-bench-"))
    try:
        started = time.perf_counter()
        paths, size = write_flows(work / "files", args.flows, args.seed, lines=1 if args.small else None)
        median = sorted(p.stat().st_size for p in paths)[len(paths) // 2]
        print(
            f"{args.flows} flows{' (one-line invoices)' if args.small else ''}, {size / 1e6:.0f} MB (median {median}"
            f" bytes), made in {time.perf_counter() - started:.0f} s; {os.cpu_count()} cores; rules {args.rules}"
        )
        os.sync()
        wait_for_a_quiet_disk(work)
        for how in loops_for(args.rules):  # schemas and stylesheets compiled: the loops measure running them only
            bare_loop(paths[:200], rules=tuple(args.rules), how=how)
        rounds: list[dict[str, float]] = []
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {number} of {args.rounds}")
            # runs are never deleted between rounds: on ext4 without a journal, creating files is slow for about a
            # minute after many were deleted
            rounds.append(one_round(work / f"round-{number}", paths, args))
        if args.rounds > 1:
            print(f"medians of {args.rounds} rounds:")
            for key in rounds[0]:
                print(f"  {key}: {statistics.median(r[key] for r in rounds):.3f}")
        if args.xmlcheck:
            sample = paths[: args.xmlcheck]
            seconds = xmlcheck_loop(sample)
            print(
                f"  facturx-xmlcheck per file:      {seconds:8.2f} s for {len(sample)} files  "
                f"{len(sample) / seconds:8.1f} flows/s (XSD + EN 16931 Schematron, a process per file)"
            )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
