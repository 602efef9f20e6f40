"""What is queued for the senders' contacts when final acknowledgements are recorded: the store's notification policy.

:func:`policy_for` builds it from the settings (None when notifications are off: the store then queues nothing).
:meth:`Policy.rows` derives, from the acknowledgements :meth:`edi.tracking.Tracking.record_outcomes` is given, one
row per event, for its ``notifications`` table:

- each document of an invoice flow (200, 213, 501; a file refused whole: one event, index 0) -> the flow's sender;
- each document of a status flow whose ``lifecycle`` object says an accepted status the invoice did not have yet
  (``known`` false, an invoice named) -> the invoice's sender.

Only senders with ``email`` addresses get rows; the statuses ``notifications.immediate`` lists are sent at once, the
others wait for their day's digest. Each event has a stable key (``decision:<flow>:<idx>``, ``status:<flow>:<idx>``)
and an immediate one its Message-ID, fixed here. Pure: reads and writes nothing, raises nothing (an acknowledgement
it cannot read is logged, and queues nothing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from edi.clock import iso
from edi.config import Settings
from edi.lifecycle.cdar import reasons_of, status_of

log = structlog.get_logger()

MAX_FINDINGS = 20  # findings kept with one notification (the acknowledgement has them all)
MAX_TEXT = 500  # characters kept of one finding's message or a partner's text


@dataclass(frozen=True, slots=True)
class Policy:
    """Who hears of what: the senders' addresses, the statuses sent at once, the digests' time zone, and what the
    Message-IDs are made of."""

    addresses: Mapping[str, tuple[str, ...]]  # sender id -> its contact addresses (senders without any: absent)
    immediate: frozenset[str]
    zone: ZoneInfo
    domain: str  # the from address's domain
    workspace: str  # the workspace id (Message-IDs of two workspaces never collide)

    def rows(self, acks: Sequence[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
        """The notifications rows these final acknowledgements call for, recorded at ``at``. An acknowledgement
        this cannot read (a bug, an unexpected shape) is logged and queues nothing: notifications never stop an
        outcome from being recorded."""
        rows: list[dict[str, Any]] = []
        for ack in acks:
            try:
                rows += self._rows_of(ack, at)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error(
                    "no notification queued", flow_id=str(ack.get("flow_id")), error=f"{type(exc).__name__}: {exc}"
                )
        return rows

    def _rows_of(self, ack: Mapping[str, Any], at: datetime) -> list[dict[str, Any]]:
        """The rows of one acknowledgement."""
        addresses = self.addresses
        documents = ack["documents"]
        if not documents:
            if ack["sender"] not in addresses:
                return []
            status = status_of(reasons_of(ack.get("findings") or [])) if ack.get("findings") else "501"
            return [self._row("decision", ack, 0, ack["sender"], status, _decision(ack, None), at)]
        rows: list[dict[str, Any]] = []
        for doc in documents:
            life = doc.get("lifecycle")
            if life is None:
                if ack["sender"] in addresses:
                    index = int(doc["index"])
                    rows.append(
                        self._row("decision", ack, index, ack["sender"], doc["status"], _decision(ack, doc), at)
                    )
                continue
            invoice = life.get("invoice")
            if life.get("known") or doc.get("status") != "200" or not invoice:
                continue  # refused, or already known: the partner's acknowledgement says so, nobody is mailed
            if invoice.get("sender") in addresses:
                rows.append(self._status_row(ack, doc, life, invoice, at))
        return rows

    def _row(
        self, kind: str, ack: Mapping[str, Any], index: int, sender: str, status: str, detail: dict[str, Any],
        at: datetime, invoice: tuple[str, int] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        flow_id, idx = invoice or (str(ack["flow_id"]), index)
        key = f"{kind}:{ack['flow_id']}:{index}"
        immediate = status in self.immediate
        when = iso(at)
        return {
            "key": key,
            "mail": key if immediate else None,
            "message_id": message_id(key, self.workspace, self.domain) if immediate else None,
            "sender": sender,
            "recipients": json.dumps(list(self.addresses[sender])),
            "kind": kind,
            "status": status,
            "mode": "immediate" if immediate else "digest",
            "day": at.astimezone(self.zone).date().isoformat(),
            "flow_id": flow_id,
            "idx": idx,
            "invoice_number": detail.get("invoice_number"),
            "detail": json.dumps(detail, ensure_ascii=False),
            "queued_at": when,
            "due_at": when if immediate else None,
            "state": "queued",
            "attempts": 0,
            "next_attempt_at": when if immediate else None,
        }

    def _status_row(
        self,
        ack: Mapping[str, Any],
        doc: Mapping[str, Any],
        life: Mapping[str, Any],
        invoice: Mapping[str, Any],
        at: datetime,
    ) -> dict[str, Any]:
        detail = {
            "status_flow": ack["flow_id"],
            "status_index": doc["index"],
            "set_by": ack["sender"],
            "set_at": life.get("set_at"),
            "reason": life.get("reason"),
            "text": _cut(life.get("text")),
            "relay": life.get("relay"),
            "invoice_flow": invoice.get("flow_id"),
            "invoice_index": invoice.get("index"),
            "invoice_number": invoice.get("invoice_number"),
            "seller_id": invoice.get("seller_id"),
            "issue_date": invoice.get("issue_date"),
            "type_code": invoice.get("type_code"),
        }
        where = (str(invoice.get("flow_id")), int(invoice.get("index") or 0))
        return self._row(
            "status", ack, int(doc["index"]), str(invoice["sender"]), str(life["status"]), detail, at, where
        )


def _decision(ack: Mapping[str, Any], doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a mail about edi's decision on a document (None: on the file as a whole) says."""
    findings = [f for f in ack.get("findings") or [] if f.get("severity") == "fatal"]
    detail: dict[str, Any] = {"file_name": ack.get("file_name"), "flow_status": ack.get("status")}
    if doc is not None:
        findings += [f for f in doc.get("findings") or [] if f.get("severity") == "fatal"]
        detail |= {
            "name": doc.get("name"),
            "reason": doc.get("reason"),
            "invoice_number": doc.get("invoice_number"),
            "issue_date": doc.get("issue_date"),
            "seller_id": doc.get("seller_id"),
            "seller_name": doc.get("seller_name"),
            "buyer_name": doc.get("buyer_name"),
            "recipient": doc.get("recipient"),
            "cdar": doc.get("cdar"),
        }
    else:
        detail |= {"reason": findings[0].get("reason") if findings else None, "cdar": ack.get("cdar")}
    detail["findings"] = [
        {
            "code": f.get("code"),
            "rule": f.get("rule"),
            "message": _cut(f.get("message")),
            "line": f.get("line"),
            "xpath": _cut(f.get("xpath")),
        }
        for f in findings[:MAX_FINDINGS]
    ]
    detail["findings_total"] = len(findings)
    return detail


def _cut(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def message_id(key: str, workspace: str, domain: str) -> str:
    """The Message-ID of the mail with this key: the same for every attempt (a resend after a crash is recognised as
    the same mail), unique across workspaces."""
    local = key.replace(":", ".")
    return f"<edi.{local}.{workspace[:12]}@{domain}>"


def policy_for(settings: Settings, workspace_id: str | None) -> Policy | None:
    """The policy the settings ask for; None when notifications are off or no sender has an address."""
    notifications = settings.notifications
    if not notifications.enabled:
        return None
    addresses = {s.id: s.email for s in settings.senders if s.email}
    if not addresses:
        return None
    assert notifications.from_address is not None  # the configuration requires it with a host
    return Policy(
        addresses=addresses,
        immediate=frozenset(notifications.immediate),
        zone=ZoneInfo(settings.digest_timezone),
        domain=notifications.from_address.rpartition("@")[2],
        workspace=workspace_id or "workspace",
    )
