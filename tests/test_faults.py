"""Faults while writing a queue file or an acknowledgement (full disk, permission or I/O error), injected with
EDI_FAULTS and real (a small tmpfs, immutable folders): the flow is parked in failed/ (or left in the spool), never
lost or half-delivered, and `edi requeue` then `edi batch` end it exactly once. Runs the real CLI in subprocesses."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from edi.tracking import Tracking
from tests.conftest import DEFAULT_CONFIG, EXPECTED, FLOWS, Workspace

FAILED = "IN_EN_ATTENTE_RETRAITEMENT"

# One flow of each shape: a UBL invoice (one queue file), a Factur-X PDF (the PDF and its XML), a rejected invoice
# (an acknowledgement only) and a ZIP batch with two accepted documents and a rejected one (three queue files).
MIXED = [
    ("acme", "01-ubl-invoice.xml"),
    ("acme", "15-facturx-invoice.pdf"),
    ("acme", "10-schema-invalid.xml"),
    ("opdemat", "03-batch-partial.zip"),
]
DELIVERING = {key for key in MIXED if key[1] != "10-schema-invalid.xml"}


# -- running the CLI ---------------------------------------------------------------------------------------------


def edi(ws: Workspace, *args: str, faults: str = "") -> subprocess.CompletedProcess[str]:
    """Run `edi --config <ws> ARGS` in a new process, with EDI_FAULTS set to ``faults`` (none when empty)."""
    env = {**os.environ, "EDI_FAULTS": faults}
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)


def sample(sender: str, name: str) -> bytes:
    return (FLOWS / sender / name).read_bytes()


def drop(ws: Workspace, flows: Iterable[tuple[str, str, bytes]]) -> dict[tuple[str, str], bytes]:
    """Drop the flows, first one oldest (the processing order); return their bytes by (sender, name)."""
    dropped = {}
    for position, (sender, name, data) in enumerate(flows):
        ws.drop(sender, name, data, age=1000 - position)
        dropped[(sender, name)] = data
    return dropped


def drop_samples(ws: Workspace, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
    return drop(ws, [(sender, name, sample(sender, name)) for sender, name in keys])


def invoice_variant(number: int) -> bytes:
    """acme's UBL invoice 01 under another invoice number: a distinct, valid invoice for Ville d'Exemple."""
    return sample("acme", "01-ubl-invoice.xml").replace(b"FA-2026-0001", f"FA-2026-{number:04d}".encode())


def two_queue_batch() -> bytes:
    """A ZIP batch (from opdemat) of two valid documents for two queues: an invoice for ville-exemple, then a credit
    note for dupont."""
    credit_note = sample("acme", "02-ubl-creditnote.xml").replace(b"AV-2026-0001", b"AV-2026-0901")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("1-invoice.xml", invoice_variant(902))
        archive.writestr("2-credit-note.xml", credit_note)
    return buffer.getvalue()


def large_invoice(lines: int) -> bytes:
    """A valid UBL invoice (acme to Ville d'Exemple) with ``lines`` invoice lines of 1.00 EUR each, totals to match."""
    text = sample("acme", "01-ubl-invoice.xml").decode("utf-8")
    head, *items = text.split("  <cac:InvoiceLine>")
    item = "  <cac:InvoiceLine>" + items[0]
    item = item.replace('unitCode="C62">20<', 'unitCode="C62">1<').replace(">90.00<", ">1.00<")
    item = item.replace(">4.50<", ">1.00<")
    head = head.replace(">150.00<", f">{lines}.00<").replace(">30.00<", f">{lines * 0.2:.2f}<")
    head = head.replace(">180.00<", f">{lines * 1.2:.2f}<").replace("FA-2026-0001", "FA-2026-0901")
    body = "".join(item.replace("<cbc:ID>1</cbc:ID>", f"<cbc:ID>{i}</cbc:ID>", 1) for i in range(1, lines + 1))
    return (head + body + "</Invoice>\n").encode("utf-8")


def expected_status(sender: str, name: str) -> str:
    """The final status of a flow: the sample's, or IN_INTEGRE for the invoices made here."""
    return EXPECTED.get(sender, {}).get(name, {}).get("flow", "IN_INTEGRE")


def workspace_on(make_workspace: Callable[..., Workspace], root: Path) -> Workspace:
    """The default test workspace, with its root at ``root`` (the config file stays in tmp_path)."""
    return make_workspace(textwrap.dedent(DEFAULT_CONFIG).replace('root = "ws"', f'root = "{root}"'))


# -- what the workspace holds ------------------------------------------------------------------------------------


def store_rows(ws: Workspace) -> dict[str, dict]:
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        return {row["flow_id"]: row for row in store.flows(limit=None)}
    finally:
        store.close()


def last_detail(ws: Workspace, flow_id: str) -> str:
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        return store.flow(flow_id)["events"][-1]["detail"] or ""
    finally:
        store.close()


def files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file() or p.is_symlink())


def in_hands(ws: Workspace) -> list[Path]:
    """Payloads left in a process's hand (spool/active/<hand>/<flow_id>), lock files aside."""
    return [p for p in files(ws.root / "spool" / "active", "*/*") if p.name != "lock"]


def assert_no_leftovers(ws: Workspace) -> None:
    """Inbox empty, no temporary file in tmp/ or any queue's tmp/, nothing waiting in spool/requeued/."""
    assert files(ws.root / "inbox", "*/*") == []
    assert files(ws.root / "tmp") == []
    assert files(ws.root / "queues", "*/tmp/*") == []
    assert list((ws.root / "spool" / "requeued").glob("*")) == []


def assert_recoverable(
    ws: Workspace, payloads: dict[tuple[str, str], bytes], failing: set[tuple[str, str]], spool_ok: bool = False
) -> list[str]:
    """The ``failing`` flows are parked whole (payload and meta.json in failed/<id>/, status
    IN_EN_ATTENTE_RETRAITEMENT; or, if ``spool_ok``, still in a hand for the next run's recovery), with no
    acknowledgement and nothing in any queue; the others ended normally. Returns the ids of the failing flows."""
    rows = store_rows(ws)
    assert sorted((r["sender"], r["file_name"]) for r in rows.values()) == sorted(payloads)
    hands = {p.name: p for p in in_hands(ws)}
    queued = [p.name for p in files(ws.root / "queues", "*/new/*") + files(ws.root / "queues", "*/cur/*")]
    ids = []
    for flow_id, row in rows.items():
        key = (row["sender"], row["file_name"])
        acks = ws.root / "acks" / row["sender"]
        if key not in failing:
            assert row["status"] == expected_status(*key), key
            assert json.loads((acks / f"{flow_id}.json").read_text())["status"] == row["status"]
            continue
        ids.append(flow_id)
        parked = ws.root / "failed" / flow_id
        if spool_ok and flow_id in hands:
            assert hands[flow_id].read_bytes() == payloads[key], key
            assert not parked.exists()
        else:
            assert row["status"] == FAILED, key
            assert (parked / "payload").read_bytes() == payloads[key], key
            meta = json.loads((parked / "meta.json").read_text(encoding="utf-8"))
            assert (meta["flow_id"], meta["sender"]) == (flow_id, row["sender"])
            assert flow_id not in hands
        assert not (acks / f"{flow_id}.json").exists() and not (acks / f"{flow_id}.xml").exists(), key
        assert not list(acks.glob(f"{flow_id}.*.cdar.xml")), key  # nor any CDAR message of it
        assert [name for name in queued if name.startswith(flow_id)] == [], key
    assert sorted(p.name for p in files(ws.root / "failed", "*/*")) == sorted(
        name for i in ids if (ws.root / "failed" / i).exists() for name in ("meta.json", "payload")
    )
    assert_no_leftovers(ws)
    return ids


def assert_each_flow_ended_once(ws: Workspace, payloads: dict[tuple[str, str], bytes]) -> None:
    """Every flow has its final status and exactly one acknowledgement (JSON and XML) saying so, and the CDAR
    messages it links (no other); the queues hold
    exactly the files the acknowledgements name, once each; every payload is archived once, nothing is left over."""
    rows = store_rows(ws)
    assert sorted((r["sender"], r["file_name"]) for r in rows.values()) == sorted(payloads)
    named, messages = [], []
    for flow_id, row in rows.items():
        key = (row["sender"], row["file_name"])
        assert row["status"] == expected_status(*key), key
        folder = ws.root / "acks" / row["sender"]
        ack = json.loads((folder / f"{flow_id}.json").read_text(encoding="utf-8"))
        assert (ack["flow_id"], ack["status"]) == (flow_id, row["status"])
        assert flow_id in (folder / f"{flow_id}.xml").read_text(encoding="utf-8")
        named += [(d["queue"], name) for d in ack["documents"] for name in d["delivered_as"]]
        messages += [d["cdar"] for d in ack["documents"]] or [ack["cdar"]]
    assert sorted(p.name for p in files(ws.root / "acks", "*/*")) == sorted(
        [f"{flow_id}.{ext}" for flow_id in rows for ext in ("json", "xml")] + messages
    )
    queued = [(p.parent.parent.name, p.name) for p in files(ws.root / "queues", "*/new/*")]
    assert sorted(queued) == sorted(named) and len(set(queued)) == len(queued)
    assert files(ws.root / "queues", "*/cur/*") == []
    archived = files(ws.root / "archive", "**/*")
    assert sorted(p.name.split("_", 1)[0] for p in archived) == sorted(rows)
    assert files(ws.root / "failed", "**/*") == [] and in_hands(ws) == []
    assert_no_leftovers(ws)


def requeue_and_finish(ws: Workspace, ids: list[str], by_id: bool = False) -> None:
    """`edi requeue --failed` (or `edi requeue ID...`), then `edi batch` without faults: both succeed."""
    requeued = edi(ws, "requeue", *ids) if by_id else edi(ws, "requeue", "--failed")
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.startswith(f"{len(ids)} flows requeued"), requeued.stdout
    finished = edi(ws, "batch")
    assert finished.returncode == 0, finished.stderr
    assert f"{len(ids)} recovered from an earlier run" in finished.stdout, finished.stdout


# -- injected faults ---------------------------------------------------------------------------------------------

INJECTED = [
    ("write.delivery", "enospc", False),
    ("write.delivery", "edquot", True),
    ("write.ack", "eacces", False),
    ("deliver.before_rename", "erofs", True),
    ("ack.json.before_rename", "enospc", False),  # the deliveries were published: they are withdrawn
    ("ack.xml.before_rename", "eio", False),  # the JSON acknowledgement was published: it is withdrawn
    ("barrier", "enospc", True),
]


@pytest.mark.parametrize(("point", "action", "by_id"), INJECTED, ids=[f"{p}={a}" for p, a, _ in INJECTED])
def test_disk_error_parks_the_flows_then_requeue_ends_each_once(workspace: Workspace, point, action, by_id) -> None:
    """A disk error writing or renaming a queue file or an ack parks the flows it hits; requeued, each ends once."""
    payloads = drop_samples(workspace, MIXED)
    run = edi(workspace, "batch", faults=f"{point}={action}")
    assert run.returncode == 1, run.stderr
    assert "Traceback (most recent call last)" not in run.stderr, run.stderr[-3000:]

    hit = DELIVERING if point.startswith(("write.delivery", "deliver.")) else set(MIXED)
    ids = assert_recoverable(workspace, payloads, hit)
    number = {"enospc": errno.ENOSPC, "edquot": errno.EDQUOT, "eacces": errno.EACCES, "eio": errno.EIO}.get(
        action, errno.EROFS
    )
    for flow_id in ids:
        assert f"[Errno {number}]" in last_detail(workspace, flow_id)
        assert f"(injected at {point})" in last_detail(workspace, flow_id)

    requeue_and_finish(workspace, ids, by_id=by_id)
    assert_each_flow_ended_once(workspace, payloads)


def test_disk_error_at_the_barrier_parks_every_flow_of_every_group(workspace: Workspace) -> None:
    """An I/O error at the barrier parks every flow of both groups (32 + 8); requeued, each ends once."""
    flows = [("acme", f"inv-{n:02d}.xml", invoice_variant(100 + n)) for n in range(37)]
    flows += [("acme", name, sample("acme", name)) for name in ("10-schema-invalid.xml", "15-facturx-invoice.pdf")]
    flows += [("opdemat", "03-batch-partial.zip", sample("opdemat", "03-batch-partial.zip"))]
    payloads = drop(workspace, flows)
    run = edi(workspace, "batch", faults="barrier=eio")
    assert run.returncode == 1, run.stderr
    assert run.stdout.startswith("40 flows, "), run.stdout

    ids = assert_recoverable(workspace, payloads, set(payloads), spool_ok=True)
    assert len(ids) == 40
    requeued = edi(workspace, "requeue", "--failed")
    assert requeued.returncode == 0, requeued.stderr
    finished = edi(workspace, "batch")
    assert finished.returncode == 0, finished.stderr
    assert "40 recovered from an earlier run" in finished.stdout, finished.stdout
    assert_each_flow_ended_once(workspace, payloads)
    assert len(files(workspace.root / "queues" / "ville-exemple" / "new")) == 37


# -- real faults: a full tmpfs, immutable folders ----------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 8 MiB mounted under tmp_path (skipped unless root and mount works), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> Path:
    """Fill the filesystem at ``mount`` with a filler file, leaving about ``leave`` bytes free; return the filler."""
    stats = os.statvfs(mount)
    free = stats.f_bavail * stats.f_frsize
    assert free > leave, (free, leave)
    filler = mount / "filler"
    with filler.open("wb") as out:
        remaining = free - leave
        while remaining:
            remaining -= out.write(b"\0" * min(remaining, 1 << 20))
    stats = os.statvfs(mount)
    assert stats.f_bavail * stats.f_frsize <= leave + stats.f_frsize
    return filler


def test_a_real_full_disk_while_delivering_parks_the_flow_then_it_is_delivered_once(make_workspace, small_fs) -> None:
    """A real ENOSPC writing a large invoice to its queue parks it in failed/; with room again, delivered once."""
    ws = workspace_on(make_workspace, small_fs / "ws")
    big = large_invoice(700)
    assert len(big) > 500_000
    payloads = drop(ws, [("acme", "02-ubl-creditnote.xml", sample("acme", "02-ubl-creditnote.xml"))])
    payloads |= drop(ws, [("acme", "big.xml", big)])
    filler = fill(small_fs, leave=384 * 1024)  # room for the store and the small flow, not for the large invoice
    run = edi(ws, "batch")
    assert run.returncode == 1, run.stderr

    (flow_id,) = assert_recoverable(ws, payloads, {("acme", "big.xml")})
    detail = last_detail(ws, flow_id)
    assert "[Errno 28] No space left on device" in detail and "stage_delivery" in detail, detail

    filler.unlink()
    requeue_and_finish(ws, [flow_id])
    assert_each_flow_ended_once(ws, payloads)
    (delivered,) = files(ws.root / "queues" / "ville-exemple" / "new")
    assert delivered.read_bytes() == big


TWO_QUEUES = ("opdemat", "two-queues.zip")


@pytest.mark.parametrize(
    ("folder", "hit"),
    [
        ("queues/ch-exemple/tmp", {("acme", "15-facturx-invoice.pdf")}),
        ("acks/acme", {key for key in MIXED if key[0] == "acme"}),  # after the deliveries: they are withdrawn
        ("queues/dupont/new", {("opdemat", "03-batch-partial.zip"), TWO_QUEUES}),  # its ville-exemple file withdrawn
    ],
    ids=["queue-tmp", "sender-acks", "queue-new"],
)
def test_a_real_permission_error_parks_the_flow_then_it_ends_once(workspace: Workspace, immutable, folder, hit) -> None:
    """An immutable queue tmp/, new/ or sender acks/ parks the flows needing it, none half-delivered; then once."""
    payloads = drop(workspace, [*((s, n, sample(s, n)) for s, n in MIXED), (*TWO_QUEUES, two_queue_batch())])
    target = workspace.root / folder
    immutable.set(target)
    run = edi(workspace, "batch")
    assert run.returncode == 1, run.stderr

    ids = assert_recoverable(workspace, payloads, hit)
    for flow_id in ids:
        assert "[Errno 1] Operation not permitted" in last_detail(workspace, flow_id)

    immutable.release(target)
    requeue_and_finish(workspace, ids, by_id=True)
    assert_each_flow_ended_once(workspace, payloads)
    by_name = {(row["sender"], row["file_name"]): flow_id for flow_id, row in store_rows(workspace).items()}
    two = json.loads((workspace.root / "acks" / "opdemat" / f"{by_name[TWO_QUEUES]}.json").read_text())
    assert [d["queue"] for d in two["documents"]] == ["ville-exemple", "dupont"]


def test_a_delivery_that_cannot_be_withdrawn_leaves_the_flow_to_the_next_run(workspace: Workspace, immutable) -> None:
    """Ack not writable, delivery not withdrawable: the flow stays in the spool; next run acks it, no redelivery."""
    payloads = drop_samples(workspace, MIXED[:1])
    new, acks = workspace.root / "queues" / "ville-exemple" / "new", workspace.root / "acks" / "acme"
    immutable.set(new, "a")
    immutable.set(acks)
    run = edi(workspace, "batch")
    assert run.returncode == 1, run.stderr
    ((flow_id, row),) = store_rows(workspace).items()
    (payload,) = in_hands(workspace)  # the consumer might take the delivery: the next run must not make another
    assert payload.name == flow_id and payload.read_bytes() == payloads[("acme", "01-ubl-invoice.xml")]
    assert files(acks) == [] and not (workspace.root / "failed" / flow_id / "payload").exists()
    (stranded,) = files(new)
    assert row["status"] == "IN_RECU" and stranded.name.startswith(flow_id)  # still claimed: not in failed/

    immutable.release(acks)
    immutable.release(new)
    stranded.rename(workspace.root / "queues" / "ville-exemple" / "cur" / f"{stranded.name}:2,S")  # the consumer
    assert "1 failed flows could not be moved to failed/ and stay in the spool" in run.stdout, run.stdout
    assert "in failed/:" not in run.stdout, run.stdout  # the summary does not send the operator where it is not
    finished = edi(workspace, "batch")
    assert finished.returncode == 0, finished.stderr
    assert "1 recovered from an earlier run" in finished.stdout
    (ack,) = [json.loads(p.read_text()) for p in workspace.acks("acme")]
    assert (ack["flow_id"], ack["status"]) == (flow_id, "IN_INTEGRE")
    assert ack["documents"][0]["delivered_as"] == [stranded.name]
    assert files(new) == [] and len(files(workspace.root / "queues", "*/cur/*")) == 1
    assert store_rows(workspace)[flow_id]["status"] == "IN_INTEGRE" and in_hands(workspace) == []
    assert_no_leftovers(workspace)


def assert_one_line_error_and_nothing_taken(run: subprocess.CompletedProcess[str], ws: Workspace, dropped) -> str:
    """A nonzero exit with one `Error: ...` line and no traceback; every dropped file still in its inbox, unanswered."""
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, run.stderr
    for sender, name in dropped:
        assert (ws.inbox(sender) / name).read_bytes() == dropped[(sender, name)]
    assert files(ws.root / "acks", "*/*") == [] and files(ws.root / "failed", "**/*") == []
    assert files(ws.root / "queues", "*/*/*") == [] and in_hands(ws) == []
    return errors[0]


def test_a_store_that_cannot_record_claims_leaves_the_files_in_the_inbox(make_workspace, small_fs) -> None:
    """A disk too full to record the claims: a one-line error, the files stay in the inbox; with room, they end once."""
    ws = workspace_on(make_workspace, small_fs / "ws")
    payloads = drop_samples(ws, MIXED[:2])
    page = os.statvfs(small_fs).f_frsize
    filler = fill(small_fs, leave=page + 32 * 1024 + 2 * page)  # the lock's text and SQLite's shared memory fit
    run = edi(ws, "batch")
    error = assert_one_line_error_and_nothing_taken(run, ws, payloads)
    assert re.search(r"cannot record claims .*(full|space)", error), error

    filler.unlink()
    assert store_rows(ws) == {}
    finished = edi(ws, "batch")
    assert finished.returncode == 0, finished.stderr
    assert_each_flow_ended_once(ws, payloads)


def test_an_immutable_store_is_a_one_line_error_and_the_files_stay(workspace: Workspace, immutable) -> None:
    """An immutable tracking store: a one-line error, the files stay in the inbox; writable again, they end once."""
    payloads = drop_samples(workspace, MIXED[:2])
    store = workspace.root / "tracking.sqlite"
    immutable.set(store)
    run = edi(workspace, "batch")
    error = assert_one_line_error_and_nothing_taken(run, workspace, payloads)
    assert "tracking store" in error, error

    immutable.release(store)
    assert store_rows(workspace) == {}
    finished = edi(workspace, "batch")
    assert finished.returncode == 0, finished.stderr
    assert_each_flow_ended_once(workspace, payloads)


def test_a_completely_full_disk_is_a_one_line_error_not_a_traceback(make_workspace, small_fs) -> None:
    """With no byte free on the workspace's filesystem, `edi batch` says so in one line and takes nothing."""
    ws = workspace_on(make_workspace, small_fs / "ws")
    payloads = drop_samples(ws, MIXED[:1])
    fill(small_fs, leave=0)
    run = edi(ws, "batch")
    assert_one_line_error_and_nothing_taken(run, ws, payloads)


# -- what cannot be taken is said ----------------------------------------------------------------------------------


def left_behind(stdout: str) -> dict[str, str]:
    """What the summary of `edi batch` names as left behind: path -> why."""
    lines = stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if re.match(r"\d+ left behind, ", line)]
    if not heads:
        return {}
    named = {}
    for line in lines[heads[0] + 1 :]:
        if not line.startswith("  ") or line.startswith("  and "):
            break
        path, _, why = line[2:].partition(": ")
        named[path] = why
    return named


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_that_cannot_be_claimed_is_named_with_why_and_the_run_exits_3(
    workspace: Workspace, immutable, workers: int
) -> None:
    """An immutable inbox file (with workers too, claimed in a worker process): every other file is answered, the
    summary names it with why and exit status 3 says the run left work behind, run after run; once it can be
    renamed, the next run takes it and exits 0."""
    flows = [("acme", f"inv-{n:03d}.xml", invoice_variant(n)) for n in range(1, 301 if workers > 1 else 3)]
    payloads = drop(workspace, flows)
    stuck = workspace.inbox("acme") / "inv-002.xml"
    immutable.set(stuck)
    for _ in range(2):
        run = edi(workspace, "batch", "--workers", str(workers))
        assert run.returncode == 3, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        assert left_behind(run.stdout) == {
            str(stuck): "Operation not permitted: it cannot be renamed (immutable or append-only, or the folder's "
            "permissions)"
        }, run.stdout
        assert run.stdout.startswith(f"{len(flows) - 1} flows" if _ == 0 else "0 flows"), run.stdout
    immutable.release(stuck)
    run = edi(workspace, "batch", "--workers", str(workers))
    assert (run.returncode, left_behind(run.stdout)) == (0, {}), run.stdout + run.stderr
    assert_each_flow_ended_once(workspace, payloads)


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Mount a small tmpfs on a folder (skipped unless root and mount works); unmounted at the end."""
    mounts: list[Path] = []

    def mount(folder: Path) -> None:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        folder.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {made.stderr.decode().strip()}")
        mounts.append(folder)

    yield mount
    for folder in mounts:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_sender_folder_on_another_filesystem_is_named_and_the_run_exits_3(workspace: Workspace, mounted) -> None:
    """A sender's folder that is another filesystem (a mount): its files cannot be claimed by rename (EXDEV), so they
    stay where they are, each named with why; the other senders' files are answered."""
    mounted(workspace.inbox("opdemat"))
    drop_samples(workspace, [("acme", "01-ubl-invoice.xml")])
    there = drop_samples(workspace, [("opdemat", "03-batch-partial.zip")])
    run = edi(workspace, "batch")
    assert run.returncode == 3, run.stdout + run.stderr
    assert left_behind(run.stdout) == {
        str(workspace.inbox("opdemat") / "03-batch-partial.zip"): "on another filesystem than the workspace: it "
        "cannot be claimed by rename"
    }, run.stdout
    assert (workspace.inbox("opdemat") / "03-batch-partial.zip").read_bytes() == there[
        ("opdemat", "03-batch-partial.zip")
    ]
    assert [r["file_name"] for r in store_rows(workspace).values()] == ["01-ubl-invoice.xml"]


def test_a_sender_folder_that_is_a_symbolic_link_is_not_followed(workspace: Workspace, tmp_path: Path) -> None:
    """A sender's inbox folder that is a symbolic link is refused, named in the summary (exit 3); the files it
    points at stay untouched and unanswered; made a real folder again, the next run takes what is in it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = sample("acme", "01-ubl-invoice.xml")
    (elsewhere / "inv.xml").write_bytes(data)
    folder = workspace.inbox("acme")
    folder.rmdir()
    folder.symlink_to(elsewhere)
    run = edi(workspace, "batch")
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stdout.startswith("0 flows"), run.stdout
    (why,) = left_behind(run.stdout).values()
    assert left_behind(run.stdout).keys() == {str(folder)} and why.startswith("a symbolic link"), run.stdout
    assert (elsewhere / "inv.xml").read_bytes() == data and store_rows(workspace) == {}
    folder.unlink()
    folder.mkdir()
    ws_payloads = drop(workspace, [("acme", "inv.xml", data)])
    run = edi(workspace, "batch")
    assert (run.returncode, run.stdout.startswith("1 flows")) == (0, True), run.stdout + run.stderr
    assert_each_flow_ended_once(workspace, ws_payloads)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_that_cannot_record_claims_any_more_says_what_it_did_first(workspace: Workspace, workers: int) -> None:
    """The store stops taking claims in the middle of a run (an I/O error from the third group on): the summary of
    what was answered is printed before the one-line error (exit 1), and counts exactly the flows answered; the
    files not claimed stay in the inbox for the next run, which ends each once."""
    flows = [("acme", f"inv-{n:03d}.xml", invoice_variant(n)) for n in range(1, 601)]
    payloads = drop(workspace, flows)
    run = edi(workspace, "batch", "--workers", str(workers), faults="tracking.record_claims=eio@3")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        "Error: cannot record claims in the tracking store: [Errno 5] Input/output error (injected at "
        "tracking.record_claims)"
    ], run.stderr[-3000:]
    answered = len(files(workspace.root / "acks" / "acme", "*.json"))
    assert answered >= 2 * 128 and run.stdout.startswith(f"{answered} flows, {answered} documents:"), run.stdout
    assert len(files(workspace.inbox("acme"))) == len(flows) - answered
    finished = edi(workspace, "batch")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith(f"{len(flows) - answered} flows"), finished.stdout
    assert_each_flow_ended_once(workspace, payloads)
