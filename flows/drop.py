"""Drop the sample flows into a workspace's inboxes as their senders would: what ``./demo.sh`` does, and the tests.

``python flows/drop.py INBOX`` copies each ``flows/<sender>/<file>`` to ``INBOX/<sender>/<file>``, senders and files
in name order, and says what it did. Every file arrives as it is copied, except one that a real sender would have
left long ago: ``acme/12-empty.xml`` is dated an hour back. An empty file that has just appeared is an upload that
has not begun, so edi leaves it alone for ``intake.incomplete_grace_seconds`` (15 minutes in ``config.toml``) before
refusing it (``IRR_VIDE_F``); dated back, it stands for an upload abandoned before its first byte, and the first run
answers it.

``python flows/drop.py --later INBOX`` drops ``flows/later/<partner>/<file>`` instead: what partners send once the
first flows are answered (the lifecycle statuses a recipient's platform returns about invoices edi delivered), which
``../demo.sh`` drops after its first run. Writes only into INBOX; imports nothing of edi's.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

FLOWS = Path(__file__).resolve().parent
LATER = FLOWS / "later"  # dropped by a second step, once the first flows are answered
# samples dropped long before the demo runs, and how long before (seconds)
LEFT_LONG_AGO = {("acme", "12-empty.xml"): 3600.0}


def samples(flows: Path = FLOWS) -> list[tuple[str, Path]]:
    """Every sample as (sender, path): the files of each sender's folder (not ``__pycache__`` or a dot folder)."""
    senders = sorted(
        p for p in flows.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")) and p.name != LATER.name
    )
    return [(folder.name, path) for folder in senders for path in sorted(folder.iterdir()) if path.is_file()]


def drop(inbox: Path, flows: Path = FLOWS) -> list[Path]:
    """Copy every sample into ``inbox/<sender>/``; the files of :data:`LEFT_LONG_AGO` are dated back."""
    dropped = []
    for sender, path in samples(flows):
        target = inbox / sender / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        back = LEFT_LONG_AGO.get((sender, path.name))
        if back is not None:
            stamp = time.time() - back
            os.utime(target, (stamp, stamp))
        dropped.append(target)
    return dropped


def main(argv: list[str]) -> int:
    """Drop the samples (``--later``: the later ones) into the inbox the last argument names and say so."""
    later = argv[:1] == ["--later"]
    if len(argv) != 1 + later:
        print("usage: python flows/drop.py [--later] INBOX", file=sys.stderr)
        return 2
    inbox = Path(argv[-1])
    dropped = drop(inbox, LATER if later else FLOWS)
    counts = {p.parent.name: sum(d.parent == p.parent for d in dropped) for p in dropped}
    print(f"dropped {len(dropped)} sample files: " + ", ".join(f"{n} in {inbox / s}/" for s, n in counts.items()))
    if later:
        return 0
    for (sender, name), back in LEFT_LONG_AGO.items():
        print(f"{sender}/{name} is dated {back / 60:g} minutes back, as an upload its sender abandoned then: an empty")
        print("  file that has just appeared is an upload that has not begun, which edi leaves alone for")
        print("  intake.incomplete_grace_seconds (15 minutes in config.toml) before refusing it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
