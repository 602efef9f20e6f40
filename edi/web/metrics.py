"""``/metrics``: the workspace in Prometheus text format, collected fresh on each scrape.

Metrics are operator data: the page needs an operator's session or, when ``[console] metrics_token`` is set, the
header ``Authorization: Bearer <token>`` (what a Prometheus scraper can send); 401 otherwise (403 for a sender
account's session). A custom collector on a private registry (never the process-wide one) reads
:mod:`edi.browse.metrics` at each scrape. Fatal findings are labelled by rule for the :data:`TOP_RULES` most
frequent rules only (label cardinality stays bounded); the others are summed in ``edi_findings_fatal_other``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edi.browse import metrics as browse
from edi.model import FlowStatus
from edi.web import render
from edi.web.app import Console, threaded
from edi.web.pages import Endpoint

TOP_RULES = browse.TOP_RULES


class WorkspaceCollector(Collector):
    """The store's counts, the inbox and spool folders, the jobs' last runs: read when Prometheus asks."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def collect(self) -> Iterator[Metric]:
        """Every metric, from a fresh read."""
        started = time.perf_counter()
        console = self.console
        counts = browse.store_counts(console.reader, TOP_RULES)
        now = console.now().timestamp()

        flows = GaugeMetricFamily("edi_flows", "Flows in the tracking store by status.", labels=["status"])
        for status, n in sorted(({s.value: 0 for s in FlowStatus} | counts["flows"]).items()):
            flows.add_metric([status], n)
        yield flows

        documents = GaugeMetricFamily(
            "edi_documents", "Documents by status (200, 213, 501) and rejection reason.", labels=["status", "reason"]
        )
        for status, reason, n in counts["documents"]:
            documents.add_metric([status, reason], n)
        yield documents

        fatal = GaugeMetricFamily(
            "edi_findings_fatal",
            f"Fatal findings by rule id (the {TOP_RULES} rules with most; the rest in edi_findings_fatal_other).",
            labels=["rule"],
        )
        for rule, n in counts["fatal_rules"]:
            fatal.add_metric([rule], n)
        yield fatal
        yield GaugeMetricFamily(
            "edi_findings_fatal_other",
            f"Fatal findings of the rules past the {TOP_RULES} with most.",
            value=counts["fatal_other"],
        )
        yield GaugeMetricFamily(
            "edi_findings_fatal_other_rules",
            f"How many rules with fatal findings are past the {TOP_RULES} labelled ones.",
            value=counts["fatal_other_rules"],
        )

        inboxes = browse.inbox_depths(console.layout, [s.id for s in console.settings.senders])
        yield from _depths("edi_inbox", "a declared sender's inbox", "sender", inboxes, now)
        spool = browse.spool_depths(console.layout)
        yield from _depths("edi_spool", "the spool (active, requeued, failed)", "area", spool, now)

        duration = GaugeMetricFamily(
            "edi_run_duration_seconds", "How long each job's last run took.", labels=["job", "outcome"]
        )
        finished = GaugeMetricFamily(
            "edi_run_finished_timestamp_seconds",
            "When each job's last run ended (Unix time).",
            labels=["job", "outcome"],
        )
        for run in counts["runs"]:
            labels = [str(run["job"]), str(run["outcome"] or "")]
            seconds = browse.seconds_between(run["started_at"], run["finished_at"])
            if seconds is not None:
                duration.add_metric(labels, seconds)
            at = browse.timestamp(run["finished_at"])
            if at is not None:
                finished.add_metric(labels, at)
        yield duration
        yield finished
        yield GaugeMetricFamily(
            "edi_metrics_collect_seconds", "How long this scrape took to collect.", value=time.perf_counter() - started
        )


def _depths(prefix: str, what: str, label: str, depths: dict[str, browse.Depth], now: float) -> Iterator[Metric]:
    files = GaugeMetricFamily(f"{prefix}_files", f"Files waiting in {what}.", labels=[label])
    age = GaugeMetricFamily(
        f"{prefix}_oldest_age_seconds", f"Age of the oldest file in {what} (0 when empty).", labels=[label]
    )
    truncated = GaugeMetricFamily(
        f"{prefix}_count_truncated",
        f"1 when {what} holds more than {browse.MAX_ENTRIES} entries and was counted that far only.",
        labels=[label],
    )
    for name, depth in depths.items():
        files.add_metric([name], depth.files)
        age.add_metric([name], depth.age(now))
        truncated.add_metric([name], 1 if depth.truncated else 0)
    yield files
    yield age
    yield truncated


def allowed(console: Console, request: Request) -> int:
    """200 when the request may read the metrics (the configured bearer token, or an operator's session), else
    401 (nobody known) or 403 (a sender account)."""
    token = console.settings.console.metrics_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return 200
    visitor = console.visitor(request)
    if visitor is None:
        return 401
    return 200 if visitor.user.operator else 403


def metrics(console: Console) -> Endpoint:
    """GET /metrics: the Prometheus text exposition of a private registry holding the workspace collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkspaceCollector(console))

    def call(request: Request) -> Response:
        status = allowed(console, request)
        if status == 401:
            response = render.as_json({"error": "log in as an operator, or send the metrics token", "status": 401}, 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="edi metrics"'
            return response
        if status == 403:
            return render.as_json({"error": "metrics are for operator accounts", "status": 403}, 403)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return threaded(call)


def routes(console: Console) -> list[BaseRoute]:
    """``/metrics``."""
    return [Route("/metrics", metrics(console))]
