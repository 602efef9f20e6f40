"""The stable finding codes of edi and what each one means for a document.

Reads nothing, writes nothing, raises nothing. Every rejection an acknowledgement carries names one of these codes.
Where the 2026 French reform (XP Z12-012/014, CDAR lifecycle) has a reason code for the case, the code *is* that
reason code (``DEST_INC``, ``IRR_SYNTAX``, ...); otherwise the code is edi's own and ``reason`` gives the reform reason
code it rolls up to, so that a lifecycle message can be built from any acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DocumentStatus(StrEnum):
    """Lifecycle status of one document (reform codes, CDAR ``ProcessConditionCode``)."""

    DEPOSEE = "200"  # accepted and delivered to its recipient's queue
    REJETEE = "213"  # readable, but refused for a business reason
    IRRECEVABLE = "501"  # unreadable or not an invoice we accept


class Code(StrEnum):
    """A stable machine code for one kind of finding."""

    IRR_VIDE_F = "IRR_VIDE_F"
    IRR_TAILLE_F = "IRR_TAILLE_F"
    IRR_TYPE_F = "IRR_TYPE_F"
    IRR_SYNTAX = "IRR_SYNTAX"
    IRR_NOM_F = "IRR_NOM_F"
    DOUBLON = "DOUBLON"
    DEST_INC = "DEST_INC"
    SERVICE_CODE_MISSING = "SERVICE_CODE_MISSING"
    SERVICE_CODE_UNKNOWN = "SERVICE_CODE_UNKNOWN"
    ENGAGEMENT_MISSING = "ENGAGEMENT_MISSING"
    SELLER_NOT_AUTHORISED = "SELLER_NOT_AUTHORISED"
    SELLER_UNIDENTIFIED = "SELLER_UNIDENTIFIED"
    XMP_PROFILE_MISMATCH = "XMP_PROFILE_MISMATCH"
    REJ_SEMAN = "REJ_SEMAN"
    LAYER_NOT_RUN = "LAYER_NOT_RUN"  # with rule VALIDATE_TIMEOUT: the rules outran limits.validate_seconds
    # a recipient's lifecycle status (a CDAR message it deposited), refused (docs/lifecycle.md, "Statuses back")
    STATUS_NOT_A_RECIPIENT = "STATUS_NOT_A_RECIPIENT"
    STATUS_SEVERAL_INVOICES = "STATUS_SEVERAL_INVOICES"
    STATUS_UNKNOWN_INVOICE = "STATUS_UNKNOWN_INVOICE"
    STATUS_OTHER_PARTNER = "STATUS_OTHER_PARTNER"
    STATUS_NOT_ALLOWED = "STATUS_NOT_ALLOWED"
    STATUS_REASON_MISSING = "STATUS_REASON_MISSING"
    STATUS_REASON_NOT_ALLOWED = "STATUS_REASON_NOT_ALLOWED"
    STATUS_ORDER = "STATUS_ORDER"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What a fatal finding with this code does to its document."""

    status: DocumentStatus
    reason: str
    meaning: str


CODES: dict[Code, CodeInfo] = {
    Code.IRR_VIDE_F: CodeInfo(DocumentStatus.IRRECEVABLE, "IRR_VIDE_F", "the file is empty"),
    Code.IRR_TAILLE_F: CodeInfo(DocumentStatus.IRRECEVABLE, "IRR_TAILLE_F", "the file is larger than allowed"),
    Code.IRR_TYPE_F: CodeInfo(
        DocumentStatus.IRRECEVABLE, "IRR_TYPE_F", "not a document type this platform accepts (not XML, unknown root)"
    ),
    Code.IRR_SYNTAX: CodeInfo(
        DocumentStatus.IRRECEVABLE, "IRR_SYNTAX", "not well-formed XML, a DOCTYPE, or invalid against its XSD"
    ),
    Code.IRR_NOM_F: CodeInfo(
        DocumentStatus.IRRECEVABLE, "IRR_NOM_F", "a file name that cannot be accepted (an unsafe path in an archive)"
    ),
    Code.DOUBLON: CodeInfo(
        DocumentStatus.REJETEE, "DOUBLON", "already deposited: the same file, or the same invoice of the same seller"
    ),
    Code.DEST_INC: CodeInfo(DocumentStatus.REJETEE, "DEST_INC", "the recipient is not in the directory"),
    Code.SERVICE_CODE_MISSING: CodeInfo(
        DocumentStatus.REJETEE, "REJ_CONT_B2G", "the recipient requires a service code (BT-10) and none is given"
    ),
    Code.SERVICE_CODE_UNKNOWN: CodeInfo(
        DocumentStatus.REJETEE, "REJ_CONT_B2G", "the service code (BT-10) is not one of the recipient's services"
    ),
    Code.ENGAGEMENT_MISSING: CodeInfo(
        DocumentStatus.REJETEE, "REJ_CONT_B2G", "the recipient requires an engagement number (BT-13) and none is given"
    ),
    Code.SELLER_NOT_AUTHORISED: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "the sender may not deposit invoices for this seller"
    ),
    Code.SELLER_UNIDENTIFIED: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "the invoice names no seller identifier (BT-29/30/31) to authorise"
    ),
    Code.REJ_SEMAN: CodeInfo(DocumentStatus.REJETEE, "REJ_SEMAN", "a business rule (EN 16931, BR-FR, ...) is broken"),
    Code.LAYER_NOT_RUN: CodeInfo(
        DocumentStatus.REJETEE, "REJ_SEMAN", "a required validation layer could not run: the document is not accepted"
    ),
    Code.XMP_PROFILE_MISMATCH: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "the PDF's XMP metadata declares another profile than its invoice XML"
    ),
    Code.STATUS_NOT_A_RECIPIENT: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "the sender lists no recipient it returns lifecycle statuses for"
    ),
    Code.STATUS_SEVERAL_INVOICES: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "the lifecycle message references more than one invoice (one per message)"
    ),
    Code.STATUS_UNKNOWN_INVOICE: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "no accepted invoice has the seller, number, type and date the status names"
    ),
    Code.STATUS_OTHER_PARTNER: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "the invoice was delivered to a recipient this partner does not speak for"
    ),
    Code.STATUS_NOT_ALLOWED: CodeInfo(
        DocumentStatus.REJETEE, "REJ_SEMAN", "a recipient may set statuses 202 to 212 only (not 200, 213, 501, ...)"
    ),
    Code.STATUS_REASON_MISSING: CodeInfo(
        DocumentStatus.REJETEE, "REJ_SEMAN", "the status needs a reason code (MDT-113): 206, 207, 208 and 210 do"
    ),
    Code.STATUS_REASON_NOT_ALLOWED: CodeInfo(
        DocumentStatus.REJETEE, "REJ_SEMAN", "the reason code (MDT-113) is not one the rules allow for this status"
    ),
    Code.STATUS_ORDER: CodeInfo(
        DocumentStatus.REJETEE, "REJ_COH", "the status may not follow the invoice's statuses (XP Z12-014 order)"
    ),
}
