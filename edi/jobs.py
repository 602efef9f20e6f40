"""Housekeeping jobs that ``edi schedule`` (or an operator) runs: retention and the daily flow report.

Retention removes, or moves out of the workspace, what is kept about finished flows older than ``retention.days``:
their archived original bytes, their acknowledgements and CDAR lifecycle messages, and their tracking rows (and the
e-mail notifications sent or failed before then, and the webhook events done with before then). It never
touches a flow that is not final (received, in processing, or failed and waiting for requeue). Files go first, then
rows, so a crash half-way leaves rows whose files are gone, which the next run finishes; never files no row points to.

The report writes ``<folder>/flows-YYYY-MM-DD.json`` (and a ``.txt`` for people) about the flows received that UTC
day: counts per status and sender, rejection reasons, most broken rules, and the flows needing an operator.

Reads the tracking store and the workspace; writes through the spool; raises WorkspaceError when the workspace is
unusable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import structlog

from edi.api.events import prune as prune_events
from edi.clock import Clock, SystemClock, iso
from edi.config import Settings
from edi.lifecycle.cdar import file_name
from edi.notify.outbox import prune
from edi.spool import Spool
from edi.store import open_store
from edi.text import printable_all
from edi.workspace import Layout

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention run did."""

    cutoff: datetime
    flows: int
    action: str


def retention(settings: Settings, clock: Clock | None = None) -> RetentionReport:
    """Delete or move out what is kept about finished flows older than ``retention.days``."""
    clock = clock or SystemClock()
    now = clock.now()
    layout = settings.workspace.layout()
    store = open_store(layout)
    try:
        layout.check_writable()
        keep = settings.retention
        cutoff = now - timedelta(days=keep.days)
        spool = Spool(layout)
        old = store.final_flows_before(cutoff)
        prune(store, cutoff)  # the notifications sent or failed before the cutoff (queued ones stay)
        prune_events(store, cutoff)  # and the webhook events (likewise)
        if not old:
            return RetentionReport(cutoff, 0, keep.action)
        ids = [row["flow_id"] for row in old]
        if keep.action == "move":
            assert keep.move_to is not None
            exported = keep.move_to / "tracking" / f"flows-{now:%Y%m%dT%H%M%S}-{ids[0]}.jsonl"
            lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in store.export(ids))
            exported.parent.mkdir(parents=True, exist_ok=True)
            spool.write_atomic(exported, lines.encode("utf-8"))
        for row in old:
            received = datetime.fromisoformat(row["received_at"].replace("Z", "+00:00"))
            name = os.fsdecode(bytes.fromhex(row["raw_name"])) if row.get("raw_name") else row["file_name"]
            archived = layout.archived(row["flow_id"], received, name)
            folder = layout.sender_acks(row["sender"])
            acks = [folder / f"{row['flow_id']}.{ext}" for ext in ("json", "xml")] + _cdars(folder, row)
            for path in [archived, *acks]:
                if not path.exists():
                    continue
                if keep.action == "move":
                    assert keep.move_to is not None
                    spool.move_out(path, _moved_to(path, layout, keep.move_to))
                else:
                    spool.discard(path)
        store.forget(ids)
    finally:
        store.close()
    log.info("retention", flows=len(ids), action=keep.action, cutoff=iso(cutoff))
    return RetentionReport(cutoff, len(ids), keep.action)


def _cdars(folder: Path, row: dict[str, Any]) -> list[Path]:
    """The flow's CDAR lifecycle messages beside its acknowledgement: index 0 (a file refused whole), then each
    document's from 1 (one per document, so up to the store's count, and on while more are there)."""
    found = [folder / file_name(row["flow_id"], 0)]
    index = 1
    while index <= int(row.get("documents_total") or 0) or (folder / file_name(row["flow_id"], index)).exists():
        found.append(folder / file_name(row["flow_id"], index))
        index += 1
    return found


def _moved_to(path: Path, layout: Layout, move_to: Path) -> Path:
    """Where retention moves ``path``: at the same place under ``move_to`` as under the workspace; acknowledgements
    kept outside the workspace (``workspace.acks``) under ``move_to/acks``."""
    if path.is_relative_to(layout.acks) and not path.is_relative_to(layout.root):
        return move_to / "acks" / path.relative_to(layout.acks)
    return move_to / path.relative_to(layout.root)


def report_folder(settings: Settings) -> Path:
    """Where daily reports go."""
    return settings.report.folder or settings.workspace.layout().root / "reports"


def day_report(settings: Settings, day: date | None = None, clock: Clock | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the report of the flows received on ``day`` (default: yesterday, UTC); return its path and content."""
    clock = clock or SystemClock()
    day = day or (clock.now().astimezone(UTC).date() - timedelta(days=1))
    start = datetime.combine(day, time(), UTC)
    layout = settings.workspace.layout()
    store = open_store(layout)
    try:
        layout.check_writable()
        content = {
            "day": day.isoformat(),
            "generated_at": iso(clock.now()),
            **store.day_report(start, start + timedelta(days=1)),
        }
    finally:
        store.close()
    folder = report_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    spool = Spool(layout)
    target = folder / f"flows-{day.isoformat()}.json"
    spool.write_atomic(target, (json.dumps(content, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    spool.write_atomic(target.with_suffix(".txt"), render_report(content).encode("utf-8"))
    log.info("report", day=day.isoformat(), flows=content["flows"], path=str(target))
    return target, content


def render_report(report: dict[str, Any]) -> str:
    """The report as text for people (every value escaped: a file name never spans or forges lines)."""
    content = printable_all(report)
    lines = [f"edi flow report for {content['day']} (UTC), generated {content['generated_at']}", ""]
    lines.append(f"flows received: {content['flows']}")
    for status, count in sorted(content["by_status"].items()):
        lines.append(f"  {status:28} {count}")
    if content["by_sender"]:
        lines += ["", "per sender:"]
        for row in content["by_sender"]:
            lines.append(
                f"  {row['sender']:16} {row['status']:28} {row['flows']:>6} flows "
                f"{row['accepted']:>6}/{row['documents']} documents accepted"
            )
    if content["reasons"]:
        lines += ["", "documents refused, by reason:"]
        lines += [f"  {r['reason']:16} {r['documents']}" for r in content["reasons"]]
    if content["top_rules"]:
        lines += ["", "most broken rules:"]
        lines += [f"  {r['layer']:16} {r['rule']:40} {r['findings']}" for r in content["top_rules"]]
    attention = content["needing_attention"]
    lines += ["", f"needing an operator (failed, or still in the spool): {len(attention)}"]
    lines += [f"  {r['flow_id']}  {r['sender']:12} {r['status']:28} {r['file_name']}" for r in attention]
    return "\n".join(lines) + "\n"
