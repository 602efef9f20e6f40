"""``edi requeue`` (and the console's requeue action): put flows that failed for our own reason back in the spool.

Moves ``failed/<flow_id>/`` to ``spool/requeued/`` through :class:`edi.spool.Spool` and records the change in the
tracking store; the next batch processes them. Raises :class:`UnknownFlowError` for an unknown flow and
:class:`WorkspaceError` for a flow that is not in ``failed/`` or a workspace that cannot be written.
"""

from __future__ import annotations

from edi.clock import Clock, SystemClock
from edi.config import Settings
from edi.errors import UnknownFlowError, WorkspaceError
from edi.spool import Spool
from edi.store import open_store
from edi.tracking import Tracking


def requeue(
    settings: Settings, flow_ids: list[str], *, all_failed: bool = False, clock: Clock | None = None
) -> list[str]:
    """Put failed flows back in the spool (the next batch processes them); return the ids requeued."""
    clock = clock or SystemClock()
    layout = settings.workspace.layout()
    layout.check_writable()
    spool = Spool(layout)
    tracking = open_store(layout)
    try:
        wanted = spool.failed_ids() if all_failed else [_failed_id(spool, tracking, f) for f in flow_ids]
        done = []
        for flow_id in wanted:
            if spool.requeue(flow_id):
                tracking.record_requeued(flow_id, clock.now())
                done.append(flow_id)
        return done
    finally:
        tracking.close()


def _failed_id(spool: Spool, tracking: Tracking, given: str) -> str:
    if given in spool.failed_ids():
        return given
    try:
        flow_id = tracking.resolve(given)
    except UnknownFlowError:
        raise UnknownFlowError(
            f"no failed flow {given!r} (see `edi flows --status IN_EN_ATTENTE_RETRAITEMENT`)"
        ) from None
    if flow_id not in spool.failed_ids():
        raise WorkspaceError(
            f"flow {flow_id} is not in failed/ (status {tracking.status(flow_id)}): nothing to requeue"
        )
    return flow_id
