"""A real OpenSSH SFTP site laid out as docs/sftp.md says, for tests/test_sftp.py: a root-owned base folder holding
the chroot (``sftp/inbox``, ``sftp/acks``), the workspace (``ws``), one Unix account and group per sender, their
keys, and an ``sshd`` of our own on 127.0.0.1; plus the real ``sftp`` client to talk to it.

Needs root (accounts, chroot). Everything it creates (accounts, groups, the base folder) is removed by
:meth:`Site.destroy`, and so is ``/run/sshd`` (sshd's privilege separation folder) when these tests made it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
TOOLS = ("sftp", "ssh", "ssh-keygen", "useradd", "userdel", "groupadd", "groupdel")
BASE_PARENTS = (Path("/srv"), Path("/opt"), Path("/var/lib"))  # root-owned, not writable by others: chroot-safe
PRIVSEP = Path("/run/sshd")  # Debian's sshd refuses to start without it
PRIVSEP_MARK = Path("/run/edi-sftp-test-made-run-sshd")  # says these tests made it (and the last run removes it)
BASE_PREFIX = "edi-sftp-test-"

SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {base}/ssh_host_ed25519_key
PidFile {base}/sshd.pid
AuthorizedKeysFile {base}/keys/%u
UsePAM no
StrictModes yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowGroups {senders_group}
LogLevel VERBOSE
Subsystem sftp internal-sftp

Match Group {senders_group}
    ChrootDirectory {base}/sftp
    ForceCommand internal-sftp -d /inbox/%u -u 0007
    AllowTcpForwarding no
    AllowAgentForwarding no
    PermitTunnel no
    X11Forwarding no
    PermitTTY no
"""


class Unavailable(Exception):
    """The site cannot be set up here (not root, a tool missing, sshd not starting): the tests skip."""


def why_unavailable() -> str | None:
    """Why this machine cannot run the site, or None when it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "SFTP end-to-end tests need root (Unix accounts, a chroot, sshd)"
    if not SSHD.is_file():
        return f"{SSHD} not found (apt-get install openssh-server)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (apt-get install openssh-client passwd)"
    if base_parent() is None:
        return f"no root-owned folder among {', '.join(map(str, BASE_PARENTS))} to hold a chroot"
    return None


def chroot_safe(path: Path) -> bool:
    """Whether every component of ``path`` is owned by root and writable by nobody else (OpenSSH's rule)."""
    for part in [path, *path.parents]:
        st = part.lstat()
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or stat.S_ISLNK(st.st_mode):
            return False
    return True


def base_parent() -> Path | None:
    """The first candidate parent folder where a chroot may live."""
    return next((p for p in BASE_PARENTS if p.is_dir() and chroot_safe(p)), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(*command: str | Path) -> None:
    """Run a set-up command; its output becomes the error message if it fails."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(map(str, command))} exited {done.returncode}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Account:
    """One sender: its Unix user (also its sender id in config.toml), its group, its private key."""

    user: str
    group: str
    key: Path


@dataclass
class SftpResult:
    """What one `sftp -b` session did."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def listing(self) -> list[str]:
        """The names an `ls -1` printed (the echoed commands left out), without their folder."""
        return [Path(line.strip()).name for line in self.stdout.splitlines() if line and not line.startswith("sftp>")]


@dataclass
class Site:
    """The base folder, the accounts and the running sshd."""

    base: Path
    senders_group: str
    accounts: dict[str, Account] = field(default_factory=dict)
    port: int = 0
    sshd: subprocess.Popen[bytes] | None = None
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    @property
    def chroot(self) -> Path:
        return self.base / "sftp"

    @property
    def ws(self) -> Path:
        return self.base / "ws"

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    def inbox(self, sender: str) -> Path:
        return self.chroot / "inbox" / sender

    def acks(self, sender: str) -> Path:
        return self.chroot / "acks" / sender

    # -- set up --------------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, senders: list[str]) -> Site:
        """Make the base folder (root, 0755), the chroot and the workspace folders, the accounts and their keys.

        ``senders`` are short labels (``acme``); each account is named ``edit_<label>_<hex>``, unique to this run."""
        reason = why_unavailable()
        if reason:
            raise Unavailable(reason)
        parent = base_parent()
        assert parent is not None
        tag = secrets.token_hex(4)
        base = parent / f"{BASE_PREFIX}{tag}"
        base.mkdir()
        site = cls(base, f"edit_snd_{tag}")
        try:
            modes = {site.chroot: 0o755, site.base / "keys": 0o755, site.base / "client": 0o700, site.ws: 0o700}
            for folder in modes:
                folder.mkdir()
            for folder, mode in [(base, 0o755), *modes.items()]:  # the workspace is edi's only: outside the chroot
                os.chown(folder, 0, 0)
                folder.chmod(mode)  # whatever the umask
            run("groupadd", "--system", site.senders_group)
            site.groups.append(site.senders_group)
            for label in senders:
                site._add_account(label, tag)
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", base / "ssh_host_ed25519_key")
        except BaseException:
            site.destroy()
            raise
        return site

    def _add_account(self, label: str, tag: str) -> None:
        user = f"edit_{label}_{tag}"
        group = f"{user}_g"
        run("groupadd", "--system", group)
        self.groups.append(group)
        run(
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            f"/inbox/{user}",
            "--shell",
            "/usr/sbin/nologin",
            "--gid",
            group,
            "--groups",
            self.senders_group,
            "--password",
            "*",  # no password, but not locked: with UsePAM no, sshd refuses "!" (locked) accounts
            user,
        )
        self.users.append(user)
        key = self.base / "client" / user
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", user, "-f", key)
        authorized = self.base / "keys" / user
        shutil.copyfile(key.with_suffix(".pub"), authorized)
        authorized.chmod(0o644)
        self.accounts[label] = Account(user, group, key)

    def apply_permissions(self) -> None:
        """The modes and owners of docs/sftp.md, once `edi init` has made the folders (edi runs as root here)."""
        for folder in (self.chroot / "inbox", self.chroot / "acks"):
            os.chown(folder, 0, 0)
            folder.chmod(0o711)  # go through to one's own folder, not list the other senders
        for account in self.accounts.values():
            gid = _gid(account.group)
            for folder, mode in ((self.inbox(account.user), 0o2770), (self.acks(account.user), 0o2750)):
                os.chown(folder, 0, gid)
                folder.chmod(mode)
        if not all(chroot_safe(p) for p in (self.chroot, self.chroot / "inbox", self.chroot / "acks")):
            raise Unavailable(f"{self.chroot} is not a valid chroot (a component is not root-owned 0755)")

    # -- sshd ----------------------------------------------------------------------------------------------------

    def start_sshd(self, timeout: float = 15.0) -> None:
        """Write our sshd_config and start `sshd -D -e` on a free port; return once it accepts connections."""
        if not PRIVSEP.is_dir():
            PRIVSEP_MARK.touch()
            PRIVSEP.mkdir(mode=0o755, parents=True)
        self.port = free_port()
        config = self.base / "sshd_config"
        config.write_text(SSHD_CONFIG.format(port=self.port, base=self.base, senders_group=self.senders_group))
        checked = subprocess.run([SSHD, "-t", "-f", config], capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise Unavailable(f"sshd rejects its configuration: {checked.stderr.strip()}")
        log = (self.base / "sshd.log").open("wb")
        self.sshd = subprocess.Popen([SSHD, "-f", config, "-D", "-e"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise Unavailable(f"sshd exited {self.sshd.returncode}: {self.sshd_log()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise Unavailable(f"sshd did not accept connections on 127.0.0.1:{self.port} within {timeout} s")

    def sshd_log(self) -> str:
        """What sshd has logged so far."""
        try:
            return (self.base / "sshd.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the sftp client -----------------------------------------------------------------------------------------

    def sftp_command(
        self, label: str, batch: Path, limit_kbps: int | None = None, block_size: int | None = None
    ) -> list[str]:
        """The `sftp` command line that runs ``batch`` as sender ``label`` (``-l``: a slow link, in kbit/s; ``-B``:
        bytes per write request, else what the server offers: 255 KiB for OpenSSH)."""
        account = self.accounts[label]
        command = ["sftp", "-b", str(batch), "-i", str(account.key), "-P", str(self.port)]
        if limit_kbps:
            command += ["-l", str(limit_kbps)]
        if block_size:
            command += ["-B", str(block_size)]
        options = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "BatchMode=yes", "IdentitiesOnly=yes"]
        for option in [*options, "LogLevel=ERROR"]:
            command += ["-o", option]
        return [*command, f"{account.user}@127.0.0.1"]

    def sftp(self, label: str, *commands: str, folder: Path, timeout: float = 60.0) -> SftpResult:
        """Run one `sftp -b` session of ``commands`` as sender ``label`` (it stops at the first command that fails)."""
        batch = folder / f"batch-{secrets.token_hex(4)}.sftp"
        batch.write_text("\n".join(commands) + "\n", encoding="utf-8")
        done = subprocess.run(
            self.sftp_command(label, batch), capture_output=True, text=True, timeout=timeout, check=False
        )
        return SftpResult(done.returncode, done.stdout, done.stderr)

    def sftp_background(
        self,
        label: str,
        *commands: str,
        folder: Path,
        limit_kbps: int | None = None,
        block_size: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start an `sftp -b` session in its own process group (so that it can be killed with its ssh child)."""
        batch = folder / f"batch-{secrets.token_hex(4)}.sftp"
        batch.write_text("\n".join(commands) + "\n", encoding="utf-8")
        return subprocess.Popen(
            self.sftp_command(label, batch, limit_kbps, block_size),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    # -- tear down -----------------------------------------------------------------------------------------------

    def destroy(self) -> None:
        """Stop sshd, delete the accounts and groups, remove the base folder (and /run/sshd if these tests made it
        and no other run of them is going on)."""
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.send_signal(signal.SIGTERM)
            try:
                self.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait()
        for user in self.users:
            _userdel(user)
        for group in reversed(self.groups):
            subprocess.run(["groupdel", group], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        others = [p for p in self.base.parent.glob(f"{BASE_PREFIX}*") if p != self.base]
        if PRIVSEP_MARK.exists() and not others:  # made by a run of these tests, and no other run is using it
            with contextlib.suppress(OSError):
                PRIVSEP.rmdir()
                PRIVSEP_MARK.unlink()


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


def _userdel(user: str) -> None:
    """Delete a user; its last sftp session may take a moment to end after its client did."""
    for _ in range(50):
        if subprocess.run(["userdel", user], capture_output=True, check=False).returncode in (0, 6):  # 6: no such user
            return
        time.sleep(0.1)
    subprocess.run(["userdel", "--force", user], capture_output=True, check=False)
