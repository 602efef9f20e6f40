"""The rules a lifecycle status set after edi's decision must follow: which statuses a recipient may set, which
reasons each needs or allows, and in what order (XP Z12-014). Pure: reads and writes nothing, raises nothing.

Used for a recipient's CDAR status flow (:mod:`edi.lifecycle.intake`, :meth:`edi.tracking.Tracking.hold_statuses`)
and meant for an operator's ``edi status set``: one set of rules for both. Each check returns None when the status
passes, else the stable code and a one-line message. Sources: shared/docs/lifecycle.md B2-B3 and
choruspro-and-reform.md §4 (BR-FR-CDV-15 and CL-09 V1.4.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from edi.codes import Code
from edi.lifecycle import labels


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# MDT-106 labels of the statuses a recipient (or an operator for it) may set, after edi's own 200 / 213 / 501 (from
# the one table of labels, edi.lifecycle.labels)
LABELS = {code: labels.LABELS[code] for code in labels.RECIPIENT_STATUSES}
RECIPIENT_STATUSES = frozenset(LABELS)
REFUSED, SUSPENDED, COMPLETED = "210", "208", "209"
REASON_REQUIRED = frozenset({"206", "207", "208", "210"})  # BR-FR-CDV-15 (213 and 501 are edi's own)
# BR-FR-CDV-CL-09: every reason code a CDAR message may carry ...
ALL_REASONS = _codes(
    "RETRAIT_MAN_SERV ST_CT_NON_DECLAR SUPPR_COMP_AVOIR TRANSF_PMNT_REGIE CONTACT_ACHTR NON_TRANSMISE JUSTIF_ABS "
    "ROUTAGE_ERR AUTRE COORD_BANC_ERR TX_TVA_ERR MONTANTTOTAL_ERR CALCUL_ERR NON_CONFORME DOUBLON DEST_INC DEST_ERR "
    "TRANSAC_INC EMMET_INC CONTRAT_TERM DOUBLE_FACT CMD_ERR ADR_ERR SIRET_ERR CODE_ROUTAGE_ERR REF_CT_ABSENT REF_ERR "
    "PU_ERR REM_ERR QTE_ERR ART_ERR MODPAI_ERR QUALITE_ERR LIVR_INCOMP REJ_SEMAN REJ_UNI REJ_COH REJ_ADR "
    "REJ_CONT_B2G REJ_REF_PJ REJ_ASS_PJ IRR_VIDE_F IRR_TYPE_F IRR_SYNTAX IRR_TAILLE_PJ IRR_NOM_PJ IRR_VID_PJ "
    "IRR_EXT_DOC IRR_TAILLE_F IRR_ANTIVIRUS IRR_NOM_F"
)
_PARTIAL = "AUTRE CMD_ERR SIRET_ERR CODE_ROUTAGE_ERR REF_CT_ABSENT REF_ERR PU_ERR REM_ERR QTE_ERR ART_ERR MODPAI_ERR"
# ... and the closed list of some statuses. 210's is the general one: the B2G-only reasons need the message to come
# from Chorus Pro itself (matricule 9999), which a relay from edi never does.
REASONS = {
    "206": _codes(f"{_PARTIAL} QUALITE_ERR LIVR_INCOMP"),
    "207": _codes(
        "AUTRE COORD_BANC_ERR TX_TVA_ERR MONTANTTOTAL_ERR CALCUL_ERR NON_CONFORME DOUBLON DEST_INC DEST_ERR "
        "TRANSAC_INC EMMET_INC CONTRAT_TERM DOUBLE_FACT CMD_ERR ADR_ERR SIRET_ERR CODE_ROUTAGE_ERR REF_CT_ABSENT "
        "REF_ERR PU_ERR REM_ERR QTE_ERR ART_ERR MODPAI_ERR QUALITE_ERR LIVR_INCOMP"
    ),
    "208": _codes("JUSTIF_ABS COORD_BANC_ERR CMD_ERR SIRET_ERR CODE_ROUTAGE_ERR REF_CT_ABSENT REF_ERR"),
    "210": _codes(
        "TX_TVA_ERR MONTANTTOTAL_ERR CALCUL_ERR NON_CONFORME DOUBLON DEST_ERR TRANSAC_INC EMMET_INC CONTRAT_TERM "
        "DOUBLE_FACT CMD_ERR ADR_ERR REF_CT_ABSENT"
    ),
}

Problem = tuple[Code, str]


class Order(StrEnum):
    """What a status is, given the invoice's statuses so far."""

    NEW = "new"  # recorded and relayed
    KNOWN = "known"  # the invoice has it already: accepted, acknowledged as known, never relayed twice
    REFUSED = "refused"  # not allowed after what the invoice has (STATUS_ORDER)


def label(status: str) -> str:
    """The French label (MDT-106) of a status a recipient may set, else the code itself."""
    return LABELS.get(status, status)


def status_problem(status: str | None) -> Problem | None:
    """Why a recipient may not set ``status`` (edi's own 200 / 213 / 501, or anything outside 202-212), if so."""
    if status in RECIPIENT_STATUSES:
        return None
    shown = repr(status) if status else "no status"
    return (
        Code.STATUS_NOT_ALLOWED,
        f"{shown} is not a status a recipient may set: 202 to 212 only (200, 213 and 501 are the platform's own)",
    )


def reason_problem(status: str, reason: str | None) -> Problem | None:
    """Why ``reason`` does not do for ``status`` (missing where BR-FR-CDV-15 requires one, or outside its list)."""
    if not reason:
        if status in REASON_REQUIRED:
            return Code.STATUS_REASON_MISSING, f"status {status} ({label(status)}) needs a reason code (MDT-113)"
        return None
    allowed = REASONS.get(status, ALL_REASONS)
    if reason in allowed:
        return None
    return (
        Code.STATUS_REASON_NOT_ALLOWED,
        f"reason {reason!r} is not allowed for status {status} ({label(status)}): {', '.join(sorted(allowed))}",
    )


def order(history: Sequence[str], status: str) -> tuple[Order, str]:
    """Whether ``status`` may follow ``history`` (the invoice's statuses after edi's decision, oldest first), with
    a message when it may not or is known already. Nothing follows a terminal 210 (a 210 again is known); 209 only
    follows a 208 not completed yet (a suspension completed, then suspended again, is new each time); any other
    status the invoice has had is known."""
    if REFUSED in history:
        if status == REFUSED:
            return Order.KNOWN, "the invoice is refused (210) already"
        return Order.REFUSED, f"the invoice was refused (210, terminal): status {status} cannot follow"
    if status in (SUSPENDED, COMPLETED):
        last = next((s for s in reversed(history) if s in (SUSPENDED, COMPLETED)), None)
        if status == last:
            return Order.KNOWN, f"the invoice is {label(status)} ({status}) already"
        if status == COMPLETED and last is None:
            return Order.REFUSED, "209 (Complétée) only follows 208 (Suspendue): the invoice was never suspended"
        return Order.NEW, ""
    if status in history:
        return Order.KNOWN, f"the invoice has status {status} ({label(status)}) already"
    return Order.NEW, ""
