"""docs/sftp.md for real: an OpenSSH `sshd` on 127.0.0.1, two sender accounts chrooted by `internal-sftp`, uploads
by the real `sftp` client, and the real `edi watch` / `edi batch` processes on the workspace beside the chroot.

Pins: each whole upload is processed exactly once and acknowledged within seconds; slow, resumed (`reput`),
interrupted and renamed uploads are never taken half-written; a sender reads its own acknowledgements and nothing
else. Needs root (accounts, chroot): the module skips otherwise, or when sshd, sftp or useradd is missing.
Deselect with ``-m "not sftp"``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import FLOWS
from tests.sftp_server import Site, Unavailable

pytestmark = pytest.mark.sftp

SAMPLE = FLOWS / "acme" / "01-ubl-invoice.xml"
MIN_AGE = 1.0
GRACE = 6.0
STALLED_POLL = 5.0  # edi.watch.STALLED_POLL: how often watch looks again while an upload looks cut short
LATENCY = 2.0  # seconds within which an acknowledgement must appear once an upload is whole (the doc says "a second")

CONFIG = """\
[workspace]
root = "{ws}"
inbox = "{chroot}/inbox"
acks = "{chroot}/acks"

[intake]
min_age_seconds = {min_age}
incomplete_grace_seconds = {grace}
{senders}
[routing]
unknown_recipient = "unrouted"

[validation]
rules = ["xsd"]
"""

SENDER = """
[[senders]]
id = "{id}"
sellers = ["*"]
"""

_numbers = itertools.count(1)


def invoice() -> bytes:
    """A valid invoice with a number of its own (never an invoice duplicate of another upload)."""
    return SAMPLE.read_bytes().replace(b"FA-2026-0001", f"FA-SFTP-{next(_numbers):04d}".encode())


def padded(data: bytes, size: int) -> bytes:
    """``data`` grown to about ``size`` bytes by an XML comment just before the root's end tag (still valid)."""
    line = b"padding to make the upload long enough to be interrupted halfway through\n"
    comment = b"<!--\n" + line * (size // len(line)) + b"-->\n"
    return data.replace(b"</Invoice>", comment + b"</Invoice>")


def pdf_with_an_update(first_revision_size: int) -> bytes:
    """The sample Factur-X PDF rewritten to ``first_revision_size`` bytes, then an incremental update appended
    (as a signing tool or a metadata fix does): two revisions, each ending in ``%%EOF``."""
    pypdf = pytest.importorskip("pypdf", minversion="5.0")  # factur-x's own PDF library; incremental writes since 5.0
    original = (FLOWS / "acme" / "15-facturx-invoice.pdf").read_bytes()
    padding = 1000
    for _ in range(10):
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(original)))
        writer.add_metadata({"/Padding": "x" * padding})
        out = io.BytesIO()
        writer.write(out)
        first = out.getvalue()
        if len(first) == first_revision_size:
            break
        padding += first_revision_size - len(first)
    assert len(first) == first_revision_size
    update = pypdf.PdfWriter(io.BytesIO(first), incremental=True)
    update.add_metadata({"/Subject": "second revision"})
    out = io.BytesIO()
    update.write(out)
    assert out.getvalue().startswith(first) and out.getvalue().count(b"%%EOF") == 2
    return out.getvalue()


def write_to_ack(ack: dict) -> float:
    """Seconds from the upload's last write (the file's mtime, ``deposited_at``) to its acknowledgement."""
    return (datetime.fromisoformat(ack["processed_at"]) - datetime.fromisoformat(ack["deposited_at"])).total_seconds()


@dataclass(frozen=True)
class Upload:
    """A file a sender uploaded, and the status its acknowledgement must have."""

    sender: str
    name: str
    status: str


class Watch:
    """A running `edi -v watch`, its log lines collected as they come."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            [*command, "-v", "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def wait_watching(self, timeout: float = 30.0) -> None:
        """Return once the inbox is watched (its log says so)."""
        deadline = time.monotonic() + timeout
        while not any('"watching"' in line for line in self.log):
            assert self.process.poll() is None, f"edi watch exited {self.process.returncode}: {''.join(self.log)}"
            assert time.monotonic() < deadline, f"edi watch not watching after {timeout} s: {''.join(self.log)}"
            time.sleep(0.05)

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit status and standard output (killed, and a failure, if it does not exit in 30 s)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("edi watch did not exit within 30 s of SIGTERM: " + "".join(self.log)) from None
        finally:
            self.reader.join(timeout=5)
        assert self.process.stdout is not None
        return self.process.returncode, self.process.stdout.read()


@dataclass
class Edi:
    """The workspace of the site, the `edi` commands on it, and the uploads made so far."""

    site: Site
    uploads: list[Upload] = field(default_factory=list)
    watch: Watch | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "edi", "--config", str(self.site.config)]

    def sender(self, label: str) -> str:
        """The sender id (and Unix user) of ``label``."""
        return self.site.accounts[label].user

    def start_watch(self) -> None:
        if self.watch is None:
            self.watch = Watch(self.command)
            self.watch.wait_watching()

    def stop_watch(self) -> None:
        """Stop `edi watch` with SIGTERM: it must exit 0, having failed no flow and logged no error."""
        if self.watch is None:
            return
        watch, self.watch = self.watch, None
        code, out = watch.stop()
        log = "".join(watch.log)
        assert code == 0, f"edi watch exited {code}: {out}{log}"
        assert out.startswith("watch stopped: ") and out.rstrip().endswith(" 0 failed"), out
        assert '"level": "error"' not in log and "Traceback" not in log, log

    def batch(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, "batch"], capture_output=True, text=True, timeout=60, check=False)

    def acks(self, label: str) -> list[dict]:
        """The JSON acknowledgements in the sender's acks folder."""
        return [json.loads(p.read_bytes()) for p in sorted(self.site.acks(self.sender(label)).glob("*.json"))]

    def acks_of(self, label: str, name: str) -> list[dict]:
        return [ack for ack in self.acks(label) if ack["file_name"] == name]

    def wait_ack(self, label: str, name: str, timeout: float) -> tuple[dict, float]:
        """The acknowledgement of the file ``name``, and the seconds it took to appear (fails after ``timeout``)."""
        started = time.monotonic()
        while not (found := self.acks_of(label, name)):
            elapsed = time.monotonic() - started
            assert elapsed < timeout, f"no acknowledgement of {name} after {timeout} s"
            if self.watch is not None:
                assert self.watch.process.poll() is None, "edi watch died: " + "".join(self.watch.log)
            time.sleep(0.02)
        return found[0], time.monotonic() - started

    def queued(self, flow_id: str) -> list[Path]:
        """The files delivered to the catch-all queue for one flow."""
        return sorted((self.site.ws / "queues" / "unrouted" / "new").glob(f"{flow_id}.*"))

    def claimed(self) -> list[Path]:
        """Flows in the spool (claimed, not yet finished): what the processes' hands hold besides their lock."""
        hands = (self.site.ws / "spool" / "active").iterdir()
        return [path for hand in hands for path in hand.iterdir() if path.name != "lock"]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """The docs/sftp.md layout under a fresh root-owned base folder, with two senders, an initialised workspace
    and a running sshd; all of it (accounts and groups too) removed at the end."""
    try:
        made = Site.create(["acme", "other"])
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        senders = "".join(SENDER.format(id=account.user) for account in made.accounts.values())
        made.config.write_text(
            CONFIG.format(ws=made.ws, chroot=made.chroot, min_age=MIN_AGE, grace=GRACE, senders=senders),
            encoding="utf-8",
        )
        init = subprocess.run(
            [sys.executable, "-m", "edi", "--config", str(made.config), "init"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert init.returncode == 0, init.stderr
        made.apply_permissions()
        made.start_sshd()
    except Unavailable as exc:
        made.destroy()
        pytest.skip(str(exc))
    except BaseException:
        made.destroy()
        raise
    yield made
    made.destroy()


@pytest.fixture(scope="module")
def edi(site: Site) -> Iterator[Edi]:
    """The edi commands on the site's workspace; a watch still running at the end is stopped (and must exit 0)."""
    running = Edi(site)
    try:
        yield running
    finally:
        if running.watch is not None and running.watch.process.poll() is None:
            running.stop_watch()


@pytest.fixture
def watching(edi: Edi) -> Edi:
    """`edi watch` running on the workspace (started once, kept across tests)."""
    edi.start_watch()
    return edi


@pytest.fixture
def not_watching(edi: Edi) -> Edi:
    """No `edi watch` running: it was stopped with SIGTERM and exited 0 (a batch may take the workspace)."""
    edi.stop_watch()
    return edi


def upload(edi: Edi, label: str, name: str, data: bytes, folder: Path) -> float:
    """Upload a valid invoice ``data`` as ``name`` with `sftp put`, note it for the final count (to be accepted);
    return the time the put returned."""
    local = folder / f"local-{name}"
    local.write_bytes(data)
    result = edi.site.sftp(label, f"put {local} {name}", folder=folder)
    assert result.returncode == 0, result.stderr
    edi.uploads.append(Upload(edi.sender(label), name, "IN_INTEGRE"))
    return time.monotonic()


def test_an_upload_is_processed_once_within_seconds(watching: Edi, tmp_path: Path) -> None:
    """`sftp put` of the sample invoice: one acknowledgement within seconds, one queue file, gone from the inbox."""
    edi = watching
    inbox = edi.site.inbox(edi.sender("acme"))
    done = upload(edi, "acme", SAMPLE.name, SAMPLE.read_bytes(), tmp_path)
    ack, _ = edi.wait_ack("acme", SAMPLE.name, timeout=10)
    latency = time.monotonic() - done
    print(f"put returned -> ack seen: {latency:.3f} s; last write -> ack written: {write_to_ack(ack):.3f} s")
    assert latency < LATENCY and write_to_ack(ack) < LATENCY, latency
    time.sleep(0.5)  # long enough for a second claim to show, had there been one
    assert len(edi.acks_of("acme", SAMPLE.name)) == 1
    assert ack["status"] == "IN_INTEGRE" and ack["sender"] == edi.sender("acme")
    assert ack["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert not (inbox / SAMPLE.name).exists() and edi.claimed() == []
    assert len(edi.queued(ack["flow_id"])) == 1
    assert (edi.site.acks(edi.sender("acme")) / f"{ack['flow_id']}.xml").is_file()


def test_a_slow_upload_resumed_with_reput_is_taken_whole_once(watching: Edi, tmp_path: Path) -> None:
    """Uploaded in four chunks (put, reput, reput, reput) 2 s apart: never taken half-written, accepted whole once."""
    # the pauses are past min_age: only the completeness check (the XML root is not closed yet) holds the file
    edi = watching
    name = "02-slow.xml"
    remote = edi.site.inbox(edi.sender("acme")) / name
    data = invoice()
    full = tmp_path / name
    full.write_bytes(data)
    cuts = [len(data) * k // 4 for k in (1, 2, 3)]
    prefixes = []
    for cut in cuts:
        prefix = tmp_path / f"prefix-{cut}-{name}"
        prefix.write_bytes(data[:cut])
        prefixes.append(prefix)
    edi.uploads.append(Upload(edi.sender("acme"), name, "IN_INTEGRE"))
    for step, (prefix, cut) in enumerate(zip(prefixes, cuts, strict=True)):
        verb = "put" if step == 0 else "reput"
        result = edi.site.sftp("acme", f"{verb} {prefix} {name}", folder=tmp_path)
        assert result.returncode == 0, result.stderr
        assert remote.stat().st_size == cut
        paused = time.monotonic()
        while time.monotonic() - paused < MIN_AGE + 1.0:  # well past min_age: an unguarded scan would take it
            assert remote.is_file() and remote.stat().st_size == cut
            assert edi.acks_of("acme", name) == [] and edi.claimed() == []
            time.sleep(0.1)
    result = edi.site.sftp("acme", f"reput {full} {name}", folder=tmp_path)
    assert result.returncode == 0, result.stderr
    done = time.monotonic()
    ack, _ = edi.wait_ack("acme", name, timeout=10)
    latency = time.monotonic() - done
    print(f"last reput returned -> ack seen: {latency:.3f} s; last write -> ack: {write_to_ack(ack):.3f} s")
    assert latency < LATENCY and write_to_ack(ack) < LATENCY, latency
    time.sleep(0.5)  # long enough for a second claim to show, had there been one
    assert len(edi.acks_of("acme", name)) == 1
    assert ack["status"] == "IN_INTEGRE", ack
    assert ack["size"] == len(data) and ack["sha256"] == hashlib.sha256(data).hexdigest()
    assert ack["documents_accepted"] == 1 and len(edi.queued(ack["flow_id"])) == 1
    assert not remote.exists()


def test_an_interrupted_upload_waits_its_grace_then_is_refused_once(watching: Edi, tmp_path: Path) -> None:
    """A `put` killed halfway is left alone for the grace period, then refused once (IRR_SYNTAX); watch goes on."""
    edi = watching
    name = "03-interrupted.xml"
    remote = edi.site.inbox(edi.sender("acme")) / name
    data = padded(invoice(), 4 * 1024 * 1024)
    local = tmp_path / name
    local.write_bytes(data)
    client = edi.site.sftp_background("acme", f"put {local} {name}", folder=tmp_path, limit_kbps=4000)
    try:
        deadline = time.monotonic() + 20
        while not (remote.is_file() and remote.stat().st_size >= 256 * 1024):
            assert client.poll() is None, f"sftp ended ({client.returncode}) before it could be interrupted"
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.01)
    finally:
        os.killpg(client.pid, signal.SIGKILL)  # the sftp client and its ssh child, mid-transfer
        client.wait()
    edi.uploads.append(Upload(edi.sender("acme"), name, "IN_REJETE"))
    time.sleep(0.5)  # what was already on its way is written, then the server closes the file
    st = remote.stat()
    assert st.st_size < len(data), "the upload was not interrupted"
    print(f"interrupted after {st.st_size} of {len(data)} bytes")
    while time.time() < st.st_mtime + GRACE - 0.5:
        assert remote.is_file() and remote.stat().st_size == st.st_size
        assert edi.acks_of("acme", name) == [] and edi.claimed() == []
        time.sleep(0.1)
    ack, _ = edi.wait_ack("acme", name, timeout=GRACE + STALLED_POLL + 5)
    after = time.time() - st.st_mtime
    print(f"last write -> refusal: {after:.2f} s (grace {GRACE} s)")
    assert after >= GRACE
    time.sleep(0.5)  # long enough for a second claim to show, had there been one
    assert len(edi.acks_of("acme", name)) == 1
    assert ack["status"] == "IN_REJETE" and ack["size"] == st.st_size, ack
    reasons = [ack_doc["reason"] for ack_doc in ack["documents"]] + [f["reason"] for f in ack["findings"]]
    assert "IRR_SYNTAX" in reasons, ack
    assert ack["documents_accepted"] == 0 and edi.queued(ack["flow_id"]) == []
    assert not remote.exists() and list((edi.site.ws / "failed").iterdir()) == []
    assert edi.watch is not None and edi.watch.process.poll() is None


def test_an_upload_renamed_into_place_is_taken_after_the_rename_only(watching: Edi, tmp_path: Path) -> None:
    """Uploaded as *.filepart, then renamed: untouched under the temporary name, taken once right after the rename."""
    edi = watching
    name = "04-renamed.xml"
    inbox = edi.site.inbox(edi.sender("acme"))
    local = tmp_path / name
    local.write_bytes(invoice())
    result = edi.site.sftp("acme", f"put {local} {name}.filepart", folder=tmp_path)
    assert result.returncode == 0, result.stderr
    edi.uploads.append(Upload(edi.sender("acme"), name, "IN_INTEGRE"))
    time.sleep(MIN_AGE + 1.0)
    assert (inbox / f"{name}.filepart").is_file() and edi.acks_of("acme", f"{name}.filepart") == []
    assert edi.acks_of("acme", name) == [] and edi.claimed() == []
    result = edi.site.sftp("acme", f"rename {name}.filepart {name}", folder=tmp_path)
    assert result.returncode == 0, result.stderr
    done = time.monotonic()
    ack, _ = edi.wait_ack("acme", name, timeout=10)
    latency = time.monotonic() - done
    print(f"rename returned -> ack seen: {latency:.3f} s")
    assert latency < LATENCY, latency
    time.sleep(0.5)  # long enough for a second claim to show, had there been one
    assert len(edi.acks_of("acme", name)) == 1 and edi.acks_of("acme", f"{name}.filepart") == []
    assert ack["status"] == "IN_INTEGRE" and len(edi.queued(ack["flow_id"])) == 1
    assert list(inbox.iterdir()) == []


def test_a_pdf_upload_on_a_slow_link_is_taken_only_once_whole(watching: Edi, tmp_path: Path) -> None:
    """A two-revision PDF over a slow link is taken whole, not when what has arrived ends in the first %%EOF."""
    # `sftp -l 96 -B 32768`: 32 KiB writes 2.7 s apart; the first one ends 200 bytes after the first revision's
    # %%EOF, so for 2.7 s the file is older than min_age, looks whole, and is still open for writing
    edi = watching
    name = "04-slow-link.pdf"
    remote = edi.site.inbox(edi.sender("acme")) / name
    block = 32768  # what sftp writes at a time
    data = pdf_with_an_update(first_revision_size=block - 200)  # the first 32 KiB end just past the first %%EOF
    local = tmp_path / name
    local.write_bytes(data)
    edi.uploads.append(Upload(edi.sender("acme"), name, "IN_INTEGRE"))
    client = edi.site.sftp_background("acme", f"put {local} {name}", folder=tmp_path, limit_kbps=96, block_size=block)
    acked_during_upload = False
    while client.poll() is None:
        acked_during_upload = acked_during_upload or bool(edi.acks_of("acme", name))
        time.sleep(0.05)
    assert client.returncode == 0
    ack, _ = edi.wait_ack("acme", name, timeout=10)
    time.sleep(0.5)  # long enough for a second claim to show, had there been one
    print(f"slow-link PDF: acknowledged mid-upload: {acked_during_upload}; ack size {ack['size']} of {len(data)}")
    assert len(edi.acks_of("acme", name)) == 1 and not remote.exists()
    assert not acked_during_upload
    assert ack["size"] == len(data) and ack["sha256"] == hashlib.sha256(data).hexdigest(), ack["size"]


def test_a_sender_fetches_its_own_acknowledgement(watching: Edi, tmp_path: Path) -> None:
    """`get /acks/<sender>/<flow_id>.json` over SFTP gives the acknowledgement of the sender's upload."""
    edi = watching
    name = "05-mine.xml"
    upload(edi, "acme", name, invoice(), tmp_path)
    ack, _ = edi.wait_ack("acme", name, timeout=10)
    flow_id, me = ack["flow_id"], edi.sender("acme")
    listing = edi.site.sftp("acme", f"ls -1 /acks/{me}", folder=tmp_path)
    assert listing.returncode == 0 and {f"{flow_id}.json", f"{flow_id}.xml"} <= set(listing.listing)
    fetched = tmp_path / "fetched.json"
    result = edi.site.sftp("acme", f"get /acks/{me}/{flow_id}.json {fetched}", folder=tmp_path)
    assert result.returncode == 0, result.stderr
    got = json.loads(fetched.read_bytes())
    assert got["flow_id"] == flow_id and got["file_name"] == name and got["status"] == "IN_INTEGRE"
    assert got["sender"] == me


def test_a_sender_reaches_nothing_but_its_own_folders(watching: Edi, tmp_path: Path) -> None:
    """A sender sees only inbox/ and acks/: the other sender's folders and the workspace are out of its reach."""
    edi = watching
    upload(edi, "other", "05-theirs.xml", invoice(), tmp_path)
    theirs, _ = edi.wait_ack("other", "05-theirs.xml", timeout=10)
    me, them = edi.sender("acme"), edi.sender("other")
    where = edi.site.sftp("acme", "pwd", folder=tmp_path)
    assert where.returncode == 0 and f"Remote working directory: /inbox/{me}" in where.stdout
    root = edi.site.sftp("acme", "ls -1 /", folder=tmp_path)
    assert root.returncode == 0 and sorted(root.listing) == ["acks", "inbox"]
    stolen = tmp_path / "stolen"
    refused = {  # what: (command, what sftp says; it reports any failed stat as "not found")
        "the list of senders": ("ls /inbox", "Permission denied"),
        "the list of senders' acks": ("ls /acks", "Permission denied"),
        "their inbox": (f"ls /inbox/{them}", "Permission denied"),
        "their acks folder": (f"ls /acks/{them}", "Permission denied"),
        "their acknowledgement": (f"get /acks/{them}/{theirs['flow_id']}.json {stolen}", "not found"),
        "the workspace": ("ls /../ws", "not found"),
        "the tracking store": (f"get /../ws/tracking.sqlite {stolen}", "not found"),
        "the workspace by its host path": (f"ls {edi.site.ws}", "not found"),
    }
    for what, (command, message) in refused.items():
        result = edi.site.sftp("acme", command, folder=tmp_path)
        assert result.returncode != 0, f"{what} reachable: {result.stdout}"
        assert message in result.stderr, (what, result.stderr)
        assert not stolen.exists(), what
    drop = tmp_path / "intruder.xml"
    drop.write_bytes(invoice())
    result = edi.site.sftp("acme", f"put {drop} /inbox/{them}/intruder.xml", folder=tmp_path)
    assert result.returncode != 0 and "Permission denied" in result.stderr, result.stderr
    assert not (edi.site.inbox(them) / "intruder.xml").exists()
    assert edi.acks_of("other", "intruder.xml") == []


def test_a_symlink_made_by_a_sender_is_never_followed(watching: Edi, tmp_path: Path) -> None:
    """A sender's `ln -s` to the other sender's acknowledgement is logged and left alone, never read as a flow."""
    # the target is relative, so it resolves on the host too: followed, it would leak the other sender's answer
    edi = watching
    upload(edi, "other", "05-target.xml", invoice(), tmp_path)
    target, _ = edi.wait_ack("other", "05-target.xml", timeout=10)
    link = edi.site.inbox(edi.sender("acme")) / "05-link.xml"
    relative = f"../../acks/{edi.sender('other')}/{target['flow_id']}.json"
    result = edi.site.sftp("acme", f"ln -s {relative} 05-link.xml", folder=tmp_path)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.resolve() == edi.site.acks(edi.sender("other")) / f"{target['flow_id']}.json"
    assert edi.watch is not None
    deadline = time.monotonic() + 10
    while not any("inbox entry skipped" in line and "05-link.xml" in line for line in edi.watch.log):
        assert time.monotonic() < deadline, "the symlink was not reported as skipped"
        time.sleep(0.05)
    time.sleep(MIN_AGE + 0.5)
    assert link.is_symlink() and edi.acks_of("acme", "05-link.xml") == [] and edi.claimed() == []
    result = edi.site.sftp("acme", "rm 05-link.xml", folder=tmp_path)
    assert result.returncode == 0 and not link.is_symlink(), result.stderr


def test_a_sender_cannot_write_or_delete_in_its_acks_folder(watching: Edi, tmp_path: Path) -> None:
    """The acks folder is read-only to its sender: no forged acknowledgement, no deleted one."""
    edi = watching
    me = edi.sender("acme")
    acks = edi.site.acks(me)
    upload(edi, "acme", "05-read-only.xml", invoice(), tmp_path)
    ack, _ = edi.wait_ack("acme", "05-read-only.xml", timeout=10)
    existing = [acks / f"{ack['flow_id']}.json"]
    forged = tmp_path / "forged.json"
    forged.write_text("{}", encoding="utf-8")
    for command in (f"put {forged} /acks/{me}/forged.json", f"rm /acks/{me}/{existing[0].name}", f"mkdir /acks/{me}/x"):
        result = edi.site.sftp("acme", command, folder=tmp_path)
        assert result.returncode != 0 and "Permission denied" in result.stderr, (command, result.stderr)
    assert not (acks / "forged.json").exists() and not (acks / "x").exists() and existing[0].is_file()
    for command in (f"put {forged} /acks/forged.json", f"put {forged} /forged.json", f"put {forged} /inbox/x.json"):
        assert edi.site.sftp("acme", command, folder=tmp_path).returncode != 0, command


def test_a_batch_takes_an_sftp_upload_once_it_is_min_age_old(not_watching: Edi, tmp_path: Path) -> None:
    """In cron mode `edi batch` leaves an upload younger than min_age and takes it on the next run, once."""
    edi = not_watching
    name = "06-batch.xml"
    account = edi.site.accounts["acme"]
    remote = edi.site.inbox(account.user) / name
    upload(edi, "acme", name, invoice(), tmp_path)
    st = remote.stat()
    assert (st.st_uid, st.st_gid) == (_uid(account.user), _gid(account.group))
    assert st.st_mode & 0o040 and not st.st_mode & 0o007, oct(st.st_mode)  # -u 0007: group (edi) reads, others not
    early = edi.batch()
    assert early.returncode == 0, early.stderr
    if time.time() - st.st_mtime < MIN_AGE:  # the usual case: the run came before min_age was up
        assert early.stdout.startswith("0 flows") and "1 still arriving" in early.stdout, early.stdout
        assert remote.is_file()
    time.sleep(max(0.0, st.st_mtime + MIN_AGE + 0.2 - time.time()))
    taken = edi.batch()
    assert taken.returncode == 0, taken.stderr
    runs = early.stdout + taken.stdout
    assert "1 flows, 1 documents: 1 integrated" in runs, runs
    again = edi.batch()
    assert again.returncode == 0 and again.stdout.startswith("0 flows, 0 documents"), again.stdout
    (ack,) = edi.acks_of("acme", name)
    assert ack["status"] == "IN_INTEGRE" and len(edi.queued(ack["flow_id"])) == 1 and not remote.exists()


UMASKS = [pytest.param(0o022, id="umask-022"), pytest.param(0o077, id="umask-077"), pytest.param(0o002, id="umask-002")]


@pytest.mark.parametrize("umask", UMASKS)
def test_acknowledgements_are_readable_not_writable_by_their_sender_whatever_the_umask(
    not_watching: Edi, tmp_path: Path, umask: int
) -> None:
    """Whatever umask `edi batch` runs with, the sender can read its acknowledgement and cannot rewrite it."""
    edi = not_watching
    name = f"06-umask-{umask:03o}.xml"
    upload(edi, "acme", name, invoice(), tmp_path)
    time.sleep(MIN_AGE + 0.2)
    run = subprocess.run([*edi.command, "batch"], capture_output=True, text=True, timeout=60, umask=umask)
    assert run.returncode == 0, run.stderr
    (ack,) = edi.acks_of("acme", name)
    me = edi.sender("acme")
    path = edi.site.acks(me) / f"{ack['flow_id']}.json"
    original = path.read_bytes()
    print(f"umask {umask:03o}: acknowledgement mode {path.stat().st_mode & 0o7777:04o}")
    fetched = tmp_path / "fetched.json"
    got = edi.site.sftp("acme", f"get /acks/{me}/{ack['flow_id']}.json {fetched}", folder=tmp_path)
    forged = tmp_path / "forged.json"
    forged.write_text('{"status": "IN_INTEGRE"}', encoding="utf-8")
    try:
        put = edi.site.sftp("acme", f"put {forged} /acks/{me}/{ack['flow_id']}.json", folder=tmp_path)
        rewritten = path.read_bytes() != original
    finally:
        path.write_bytes(original)  # the module's final count reads every acknowledgement
    assert got.returncode == 0, got.stderr
    assert json.loads(fetched.read_bytes())["flow_id"] == ack["flow_id"]
    assert put.returncode != 0 and "Permission denied" in put.stderr and not rewritten, put.stdout


def test_sigterm_stops_watch_even_in_the_middle_of_a_log_line(not_watching: Edi, tmp_path: Path) -> None:
    """SIGTERM reaching `edi -v watch` in the middle of writing a log line still stops it, exit 0."""
    # a sender's junk (400 symlinks, each logged on every pass) fills a stderr nobody reads yet, so the main
    # thread is blocked mid-line when the signal comes; stderr is drained right after
    edi = not_watching
    links = [f"ln -s /nowhere junk-{number:03d}.xml" for number in range(400)]
    result = edi.site.sftp("acme", *links, folder=tmp_path)
    assert result.returncode == 0, result.stderr
    watch = subprocess.Popen([*edi.command, "-v", "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    drained = threading.Thread(target=lambda: watch.communicate(), daemon=True)
    hung = False
    try:
        wchan = Path(f"/proc/{watch.pid}/wchan")
        deadline = time.monotonic() + 20
        while "pipe_write" not in wchan.read_text():  # blocked writing to its full stderr, mid-line
            assert watch.poll() is None and time.monotonic() < deadline, "edi watch never filled its stderr"
            time.sleep(0.05)
        watch.send_signal(signal.SIGTERM)
        drained.start()
        try:
            watch.wait(timeout=3)
        except subprocess.TimeoutExpired:
            hung = True
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        cleaned = edi.site.sftp("acme", "rm junk-*.xml", folder=tmp_path)
        assert cleaned.returncode == 0, cleaned.stderr
    print(f"SIGTERM during a log write: {'hung (killed after 3 s)' if hung else f'exit {watch.returncode}'}")
    assert not hung and watch.returncode == 0


def test_every_complete_upload_was_processed_exactly_once(not_watching: Edi, tmp_path: Path) -> None:
    """Across the module: one acknowledgement and one tracked flow per upload, each accepted document queued once."""
    edi = not_watching
    if not edi.uploads:  # run alone: make one upload to count
        upload(edi, "acme", "07-alone.xml", invoice(), tmp_path)
        time.sleep(MIN_AGE + 0.2)
        assert edi.batch().returncode == 0
    last = edi.batch()
    assert last.returncode == 0 and last.stdout.startswith("0 flows, 0 documents"), last.stdout
    acks = [ack for label in edi.site.accounts for ack in edi.acks(label)]
    got = Counter(Upload(ack["sender"], ack["file_name"], ack["status"]) for ack in acks)
    assert got == Counter(edi.uploads)
    assert len({ack["flow_id"] for ack in acks}) == len(acks)
    queued = sorted(p.name for p in (edi.site.ws / "queues" / "unrouted" / "new").iterdir())
    assert queued == sorted(name for ack in acks for doc in ack["documents"] for name in doc["delivered_as"])
    assert len({name.rsplit(".", 1)[0] for name in queued}) == sum(ack["documents_accepted"] for ack in acks)
    for account in edi.site.accounts.values():
        assert list(edi.site.inbox(account.user).iterdir()) == []
        xml_acks = [p for p in edi.site.acks(account.user).glob("*.xml") if not p.name.endswith(".cdar.xml")]
        assert len(xml_acks) == sum(a["sender"] == account.user for a in acks)
    assert edi.claimed() == [] and list((edi.site.ws / "failed").iterdir()) == []
    flows = subprocess.run([*edi.command, "flows", "--json", "--limit", "1000"], capture_output=True, text=True)
    tracked = [json.loads(line) for line in flows.stdout.splitlines()]
    assert sorted(row["flow_id"] for row in tracked) == sorted(ack["flow_id"] for ack in acks)
    print(f"{len(edi.uploads)} uploads, {len(acks)} acknowledgements, {len(queued)} queue files")


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid
