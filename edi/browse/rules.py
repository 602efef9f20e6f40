"""The console's rules: which rules fired over a period and how often, and one rule in full (its text, layer, rule set
versions, findings per day and per sender, the latest flows that broke it).

A finding belongs to its flow's period (the flow's ``received_at``, bounded on flow ids too so that SQLite reads only
that range) and to its flow's sender's scope. Findings without a rule id (an empty file, say) are not rules and are
left out. Reads the store through :class:`edi.browse.Reader`; raises nothing of its own (an unknown rule is None).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from edi.browse import Reader, scoped
from edi.browse.flows import ID_SLACK, MAX_TEXT, stamp
from edi.clock import iso

LATEST_FLOWS = 20
MAX_DAYS_FILLED = 400  # a per-day table fills the days without a finding up to this many days


def _period(since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    """The condition keeping findings of flows received in ``[since, until)`` (``x`` the findings, ``f`` flows)."""
    where: list[str] = []
    values: list[Any] = []
    if since is not None:
        where.append("x.flow_id >= ? AND f.flow_id >= ? AND f.received_at >= ?")
        values += [stamp(since), stamp(since), iso(since)]
    if until is not None:
        where.append("x.flow_id < ? AND f.flow_id < ? AND f.received_at < ?")
        values += [stamp(until + ID_SLACK), stamp(until + ID_SLACK), iso(until)]
    return " AND ".join(where) or "1", values


def _from(
    scope: str | None, since: datetime | None, until: datetime | None, *, from_flows: bool = False
) -> tuple[str, list[Any]]:
    """FROM and WHERE for findings of a scope and period (more conditions are ANDed after it). ``from_flows``
    makes SQLite walk the scope's flows of the period first (CROSS JOIN fixes the order), each flow's findings by
    its index: left to itself, it walks every finding by the rule index for an all-rules summary (3x slower)."""
    cond, args = scoped(scope, "f.sender")
    period, values = _period(since, until)
    tables = (
        "flows f CROSS JOIN findings x ON x.flow_id = f.flow_id"
        if from_flows
        else "findings x JOIN flows f ON f.flow_id = x.flow_id"
    )
    return f"FROM {tables} WHERE x.rule IS NOT NULL AND {cond} AND {period}", [*args, *values]


def rules_summary(
    reader: Reader, scope: str | None, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """Every rule that fired on the scope's flows in the period, most findings first: ``rule``, ``layer``,
    ``severity``, ``message`` (the text of its latest finding), ``versions`` (rule set versions seen), ``findings``,
    ``fatal`` (findings of fatal severity), ``flows`` (flows with at least one), ``last_flow``."""
    base, args = _from(scope, since, until, from_flows=True)
    rows = reader.rows(
        "SELECT x.rule AS rule, count(*) AS findings, count(DISTINCT x.flow_id) AS flows, "
        "sum(x.severity = 'fatal') AS fatal, json_group_array(DISTINCT x.rule_set_version) AS versions, "
        "max(x.flow_id) AS last_flow, x.layer AS layer, x.severity AS severity, x.message AS message "
        f"{base} GROUP BY x.rule ORDER BY findings DESC, flows DESC, x.rule",
        args,
    )
    for row in rows:  # with a single max(), SQLite takes the other bare columns from the row that has it
        row["versions"] = _versions(row["versions"])
    return rows


def _versions(value: str | None) -> list[str]:
    return sorted(v for v in json.loads(value or "[]") if v)


def rule(
    reader: Reader,
    scope: str | None,
    rule_id: str,
    since: datetime | None,
    until: datetime | None,
    *,
    today: date | None = None,
    latest: int = LATEST_FLOWS,
) -> dict[str, Any] | None:
    """One rule as the scope saw it: None when it never fired on the scope's flows (an unknown rule, or another
    sender's); else ``rule``, ``layer``, ``severity``, ``message``, ``code``, ``reason``, ``last_flow`` (its latest
    finding, whenever), and over the period ``findings``, ``flows``, ``versions`` (rule set version with its count),
    ``days`` (per day; the days without a finding, up to ``today``, as zeros), ``senders`` (per sender: only its own
    for a sender account) and ``latest`` (the newest flows that broke it)."""
    if len(rule_id) > MAX_TEXT:
        return None
    cond, args = scoped(scope, "f.sender")
    about = reader.one(
        "SELECT x.rule AS rule, x.layer AS layer, x.severity AS severity, x.message AS message, x.code AS code, "
        "x.reason AS reason, x.flow_id AS last_flow FROM findings x JOIN flows f ON f.flow_id = x.flow_id "
        f"WHERE x.rule = ? AND {cond} ORDER BY x.flow_id DESC LIMIT 1",
        [rule_id, *args],
    )
    if about is None:
        return None
    base, values = _from(scope, since, until)
    base, values = f"{base} AND x.rule = ?", [*values, rule_id]
    total = reader.one(f"SELECT count(*) AS findings, count(DISTINCT x.flow_id) AS flows {base}", values) or {}
    about["findings"], about["flows"] = total.get("findings", 0), total.get("flows", 0)
    about["versions"] = reader.rows(
        f"SELECT x.rule_set_version AS version, count(*) AS findings {base} "
        "GROUP BY x.rule_set_version ORDER BY findings DESC",
        values,
    )
    days = reader.rows(
        f"SELECT substr(f.received_at, 1, 10) AS day, count(*) AS findings, count(DISTINCT x.flow_id) AS flows "
        f"{base} GROUP BY day ORDER BY day",
        values,
    )
    last_day = (until - timedelta(microseconds=1)).date() if until else today
    about["days"] = fill_days(days, since.date() if since else None, last_day)
    about["senders"] = reader.rows(
        f"SELECT f.sender AS sender, count(*) AS findings, count(DISTINCT x.flow_id) AS flows {base} "
        "GROUP BY f.sender ORDER BY findings DESC, f.sender",
        values,
    )
    about["latest"] = reader.rows(
        "SELECT f.flow_id AS flow_id, f.sender AS sender, f.status AS status, f.file_name AS file_name, "
        f"f.received_at AS received_at, count(*) AS findings {base} "
        f"GROUP BY x.flow_id ORDER BY x.flow_id DESC LIMIT {int(latest)}",
        values,
    )
    return about


def fill_days(days: list[dict[str, Any]], first: date | None, last: date | None) -> list[dict[str, Any]]:
    """The per-day rows with the days between ``first`` and ``last`` (each defaulting to the first or last day
    seen) that had none as zeros; as given when that span is longer than :data:`MAX_DAYS_FILLED` days."""
    seen = {str(d["day"]): d for d in days}
    try:
        known = [date.fromisoformat(d) for d in seen]
    except ValueError:  # a received_at the store holds malformed: the rows as they are
        return days
    first = first or min(known, default=None)
    last = last or max(known, default=None)
    if first is None or last is None or last < first or (last - first).days >= MAX_DAYS_FILLED:
        return days
    out = [
        seen.pop(day, {"day": day, "findings": 0, "flows": 0})
        for day in ((first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1))
    ]
    return sorted(out + list(seen.values()), key=lambda d: str(d["day"]))
