"""The lifecycle statuses' French labels (the reform's CDAR ``ProcessCondition``, MDT-106): one table, for the CDAR
messages edi writes (:mod:`edi.lifecycle.rules`, :mod:`edi.lifecycle.cdar`) and every view of an invoice's life
(``edi invoices``, ``edi show``, the console).

Codes and labels from shared/docs/choruspro-and-reform.md §4 (the FNFE CDAR examples and XP Z12-014 annex B): 200 to
213 and 501. Stdlib only; reads and writes nothing, raises nothing.
"""

from __future__ import annotations

LABELS: dict[str, str] = {
    "200": "Déposée",
    "201": "Émise par la plateforme",
    "202": "Reçue",
    "203": "Mise à disposition",
    "204": "Prise en charge",
    "205": "Approuvée",
    "206": "Approuvée partiellement",
    "207": "En litige",
    "208": "Suspendue",
    "209": "Complétée",
    "210": "Refusée",
    "211": "Paiement transmis",
    "212": "Encaissée",
    "213": "Rejetée",
    "501": "Irrecevable",
}
EDI_STATUSES = ("200", "213", "501")  # edi's own decision on a document (documents.status)
RECIPIENT_STATUSES = tuple(f"{n}" for n in range(202, 213))  # what a recipient (or an operator) sets after it
# a recipient's processing statuses: once one is recorded, the invoice no longer waits for its recipient (202 Reçue
# and 203 Mise à disposition are the receiving platform's, not the recipient's decision)
PROCESSING_STATUSES = tuple(f"{n}" for n in range(204, 213))
STATUSES = tuple(sorted(LABELS))  # every code an invoice's current status may be


def label(code: str | None) -> str:
    """The French label of a status code ("204" -> "Prise en charge"); an unknown code is its own label, None ""."""
    if code is None:
        return ""
    return LABELS.get(code, code)


def titled(code: str | None) -> str:
    """A code with its label, as people read it: "204 Prise en charge" (an unknown code alone)."""
    if code is None:
        return ""
    name = LABELS.get(code)
    return f"{code} {name}" if name else code
