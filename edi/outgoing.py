"""Send what is due after a run or a pass: the notifications (:func:`edi.notify.send.send_due`), then the webhook
calls (:func:`edi.api.deliver.deliver_due`), each only where the configuration turns it on.

Used by ``edi batch`` before it exits, by ``edi watch`` between passes and by the scheduled batch job. Never raises:
a failure (the store, a bug) is logged and said in a line, and the caller's own outcome stands. smtplib and
http.client are loaded only by a workspace that uses them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import structlog

from edi.config import Settings

if TYPE_CHECKING:
    from edi.clock import Clock
    from edi.tracking import Tracking

log = structlog.get_logger()


class _Report(Protocol):
    @property
    def tried(self) -> bool: ...

    def summary(self) -> str: ...


def _notifications(settings: Settings, clock: Clock | None, store: Tracking | None) -> _Report:
    from edi.notify.send import send_due

    return send_due(settings, clock=clock, store=store)


def _webhooks(settings: Settings, clock: Clock | None, store: Tracking | None) -> _Report:
    from edi.api.deliver import deliver_due

    return deliver_due(settings, clock=clock, store=store)


def send_outgoing(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Tracking | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[str]:
    """Send the notifications, then call the webhooks, that are due (none once ``should_stop`` says so); a line for
    each that did something or failed. ``store``: the caller's open store (else the workspace's is opened)."""
    lines = []
    for name, wanted, failed, send in (
        ("notifications", settings.notifications.enabled, "not sent", _notifications),
        ("webhooks", settings.api.webhooks, "not delivered", _webhooks),
    ):
        if not wanted or (should_stop is not None and should_stop()):
            continue
        try:
            report = send(settings, clock, store)
        except Exception as exc:  # the store or a bug: the run's own outcome stands
            log.error(f"{name} {failed}", error=f"{type(exc).__name__}: {exc}")
            lines.append(f"{name}: {failed} ({type(exc).__name__}: {exc})")
            continue
        if report.tried:
            lines.append(report.summary())
    return lines
