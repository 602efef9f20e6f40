"""Build a flow's acknowledgement ("Suivi des flux"): one dict, rendered as JSON and as XML with the same content.

Pure: reads and writes nothing (the pipeline has the spool write the files). The XML is valid against
``schemas/acknowledgement.xsd``; :func:`from_xml` reads it back to the same dict. Every string is made safe for
XML 1.0 (characters XML cannot carry become U+FFFD) before either rendering, so both always agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lxml import etree

from edi.clock import iso
from edi.model import Document, Finding, Flow

SCHEMA_VERSION = 1
NAMESPACE = "urn:edi:acknowledgement:1"

# Field order and types, shared by the dict, the XML and the XSD. Types: "str", "int", "bool", "names" (a list of
# strings, as <name> elements), the name of a nested list of records, or the name of one nested record (_RECORDS).
FINDING_FIELDS: tuple[tuple[str, str], ...] = (
    ("code", "str"),
    ("reason", "str"),
    ("rule", "str"),
    ("assert_id", "str"),
    ("layer", "str"),
    ("severity", "str"),
    ("line", "int"),
    ("xpath", "str"),
    ("message", "str"),
    ("rule_set_version", "str"),
    ("rule_set_sha256", "str"),
)
DOCUMENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("index", "int"),
    ("name", "str"),
    ("size", "int"),
    ("sha256", "str"),
    ("container", "str"),
    ("embedded_name", "str"),
    ("attachments", "names"),
    ("declared_profile", "str"),
    ("syntax", "str"),
    ("kind", "str"),
    ("profile", "str"),
    ("specification_id", "str"),
    ("layers", "names"),
    ("invoice_number", "str"),
    ("type_code", "str"),
    ("issue_date", "str"),
    ("currency", "str"),
    ("seller_id", "str"),
    ("seller_name", "str"),
    ("seller_key", "str"),
    ("buyer_id", "str"),
    ("buyer_name", "str"),
    ("service_code", "str"),
    ("engagement", "str"),
    ("recipient", "str"),
    ("queue", "str"),
    ("delivered_as", "names"),
    ("status", "str"),
    ("reason", "str"),
    ("findings", "finding"),
    ("cdar", "str"),  # the file name of the document's CDAR lifecycle message, beside the acknowledgement
    ("lifecycle", "lifecycle"),  # a recipient's status (a CDAR message it deposited): what became of it
)
# The invoice a recipient's status is about, as edi accepted it.
INVOICE_FIELDS: tuple[tuple[str, str], ...] = (
    ("flow_id", "str"),
    ("index", "int"),
    ("sender", "str"),
    ("invoice_number", "str"),
    ("seller_id", "str"),
    ("issue_date", "str"),
    ("type_code", "str"),
)
# A recipient's lifecycle status: what its message says, whether the invoice had it already (``known``: accepted,
# never relayed twice), and the CDAR message relayed to the invoice's sender.
LIFECYCLE_FIELDS: tuple[tuple[str, str], ...] = (
    ("status", "str"),
    ("reason", "str"),
    ("text", "str"),
    ("set_at", "str"),
    ("known", "bool"),
    ("invoice", "invoice"),
    ("relay", "str"),
)
# An official artefact the flow's CDAR messages were checked against (the CDAR D22B XSD, the BR-FR-CDV Schematron).
ARTEFACT_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "str"),
    ("version", "str"),
    ("sha256", "str"),
)
FLOW_FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int"),
    ("flow_id", "str"),
    ("sender", "str"),
    ("file_name", "str"),
    ("size", "int"),
    ("sha256", "str"),
    ("received_at", "str"),
    ("deposited_at", "str"),
    ("kind", "str"),
    ("processed_at", "str"),
    ("status", "str"),
    ("duplicate_of", "str"),
    ("documents_total", "int"),
    ("documents_accepted", "int"),
    ("findings", "finding"),
    ("documents", "document"),
    ("cdar", "str"),  # the flow's own CDAR message (501), when its file was refused whole, before any document
    ("cdar_artefacts", "artefact"),
)
_NESTED = {"finding": FINDING_FIELDS, "document": DOCUMENT_FIELDS, "artefact": ARTEFACT_FIELDS}
_RECORDS = {"lifecycle": LIFECYCLE_FIELDS, "invoice": INVOICE_FIELDS}  # one nested record, or none

_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def delivery_name(flow_id: str, doc: Document, suffix: str) -> str:
    """The stable, unique name of one file of an accepted document in its queue (``suffix``: xml or pdf)."""
    return f"{flow_id}.{doc.index:04d}.{suffix}"


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding as acknowledgements carry it."""
    return _safe(
        {
            "code": str(finding.code),
            "reason": finding.reason,
            "rule": finding.rule,
            "assert_id": finding.assert_id,
            "layer": str(finding.layer),
            "severity": str(finding.severity),
            "line": finding.line,
            "xpath": finding.xpath,
            "message": finding.message,
            "rule_set_version": finding.rule_set_version,
            "rule_set_sha256": finding.rule_set_sha256,
        }
    )


def document_dict(flow_id: str, doc: Document) -> dict[str, Any]:
    """A document as acknowledgements carry it."""
    invoice = doc.invoice
    seller = invoice.seller if invoice else None
    buyer = invoice.buyer if invoice else None
    return _safe(
        {
            "index": doc.index,
            "name": doc.name,
            "size": doc.size,
            "sha256": doc.sha256,
            "container": doc.container,
            "embedded_name": doc.embedded_name,
            "attachments": list(doc.attachments),
            "declared_profile": doc.declared_profile,
            "syntax": doc.syntax,
            "kind": doc.kind,
            "profile": doc.profile,
            "specification_id": doc.specification_id,
            "layers": list(doc.layers),
            "invoice_number": invoice.number if invoice else None,
            "type_code": invoice.type_code if invoice else None,
            "issue_date": invoice.issue_date if invoice else None,
            "currency": invoice.currency if invoice else None,
            "seller_id": seller.main_id if seller else None,
            "seller_name": seller.name if seller else None,
            "seller_key": seller.key if seller else None,
            "buyer_id": buyer.main_id if buyer else None,
            "buyer_name": buyer.name if buyer else None,
            "service_code": invoice.buyer_reference if invoice else None,
            "engagement": invoice.order_reference if invoice else None,
            "recipient": doc.recipient,
            "queue": doc.queue,
            "delivered_as": [delivery_name(flow_id, doc, suffix) for suffix in doc.suffixes] if doc.queue else [],
            "status": str(doc.status),
            "reason": doc.reason,
            "findings": [finding_dict(f) for f in doc.findings],
            "cdar": None,  # named by whoever writes the message (edi.processor)
            "lifecycle": lifecycle_dict(doc),
        }
    )


def lifecycle_dict(doc: Document) -> dict[str, Any] | None:
    """A recipient's status as acknowledgements carry it (None for an invoice); ``relay`` is named by whoever
    writes the relayed message (edi.processor)."""
    report = doc.lifecycle
    if report is None:
        return None
    invoice = report.invoice
    found = None
    if invoice is not None:
        found = _safe(
            {
                "flow_id": invoice.flow_id,
                "index": invoice.index,
                "sender": invoice.sender,
                "invoice_number": invoice.invoice_number,
                "seller_id": invoice.seller_id,
                "issue_date": invoice.issue_date,
                "type_code": invoice.type_code,
            }
        )
    status = {"status": report.status, "reason": report.reason, "text": report.text, "set_at": report.set_at}
    return _safe(status) | {"known": report.known, "invoice": found, "relay": None}


def flow_record(flow: Flow) -> dict[str, Any]:
    """What is known of a flow as soon as it is claimed: its identity, the file, when it came."""
    return _safe(
        {
            "flow_id": flow.flow_id,
            "sender": flow.sender,
            "file_name": flow.file_name,
            "size": flow.size,
            "sha256": flow.sha256,
            "received_at": iso(flow.received_at),
            "deposited_at": iso(flow.deposited_at) if flow.deposited_at else None,
            "kind": flow.kind,
        }
    )


def build_ack(flow: Flow, processed_at: datetime) -> dict[str, Any]:
    """The final acknowledgement of ``flow``."""
    return _safe(
        {
            "schema_version": SCHEMA_VERSION,
            **flow_record(flow),
            "processed_at": iso(processed_at),
            "status": str(flow.status),
            "duplicate_of": flow.duplicate_of,
            "documents_total": len(flow.documents),
            "documents_accepted": sum(d.accepted for d in flow.documents),
            "findings": [finding_dict(f) for f in flow.findings],
            "documents": [document_dict(flow.flow_id, d) for d in flow.documents],
            "cdar": None,  # named, with the artefacts, by whoever writes the CDAR messages (edi.processor)
            "cdar_artefacts": [],
        }
    )


def to_json(ack: Mapping[str, Any]) -> bytes:
    """The acknowledgement as UTF-8 JSON, on one line (``jq .`` shows it indented)."""
    return (json.dumps(ack, ensure_ascii=False) + "\n").encode("utf-8")


def to_xml(ack: Mapping[str, Any]) -> bytes:
    """The acknowledgement as XML in the ``urn:edi:acknowledgement:1`` namespace, indented (written as text: it is
    made for every flow, and building it as a tree costs several times more)."""
    out = [f"<?xml version='1.0' encoding='UTF-8'?>\n<acknowledgement xmlns=\"{NAMESPACE}\">\n"]
    _write(out, ack, FLOW_FIELDS, "  ")
    out.append("</acknowledgement>\n")
    return "".join(out).encode("utf-8")


def _text(value: str) -> str:
    """Character data as XML writes it: markup characters escaped, and carriage returns (which XML parsers would
    turn into line feeds)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _write(out: list[str], values: Mapping[str, Any], spec: Sequence[tuple[str, str]], pad: str) -> None:
    for name, kind in spec:
        value = values.get(name)
        if value is None:
            continue
        if kind == "names":
            if value:
                items = "".join(f"{pad}  <name>{_text(item)}</name>\n" for item in value)
                out.append(f"{pad}<{name}>\n{items}{pad}</{name}>\n")
            else:
                out.append(f"{pad}<{name}/>\n")
        elif kind in _RECORDS:
            out.append(f"{pad}<{name}>\n")
            _write(out, value, _RECORDS[kind], pad + "  ")
            out.append(f"{pad}</{name}>\n")
        elif kind == "bool":
            out.append(f"{pad}<{name}>{'true' if value else 'false'}</{name}>\n")
        elif kind in _NESTED:
            if not value:
                out.append(f"{pad}<{name}/>\n")
                continue
            out.append(f"{pad}<{name}>\n")
            for item in value:
                out.append(f"{pad}  <{kind}>\n")
                _write(out, item, _NESTED[kind], pad + "    ")
                out.append(f"{pad}  </{kind}>\n")
            out.append(f"{pad}</{name}>\n")
        else:
            out.append(f"{pad}<{name}>{_text(value if isinstance(value, str) else str(value))}</{name}>\n")


def from_xml(data: bytes) -> dict[str, Any]:
    """Read an acknowledgement XML back into the dict it was made from."""
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    return _read(root, FLOW_FIELDS)


def _read(element: etree._Element, spec: Sequence[tuple[str, str]]) -> dict[str, Any]:
    children = {etree.QName(child).localname: child for child in element}
    result: dict[str, Any] = {}
    for name, kind in spec:
        child = children.get(name)
        if kind == "names":
            result[name] = [] if child is None else [item.text or "" for item in child]
        elif kind in _NESTED:
            result[name] = [] if child is None else [_read(item, _NESTED[kind]) for item in child]
        elif child is None:
            result[name] = None
        elif kind in _RECORDS:
            result[name] = _read(child, _RECORDS[kind])
        elif kind == "bool":
            result[name] = (child.text or "").strip() == "true"
        else:
            text = child.text or ""
            result[name] = int(text) if kind == "int" else text
    return result


def _safe(values: dict[str, Any]) -> dict[str, Any]:
    sub = _NOT_XML.sub
    for key, value in values.items():
        if value.__class__ is str:
            if not (value.isascii() and value.isprintable()):  # printable ASCII is all allowed: no search needed
                values[key] = sub("\ufffd", value)
        elif value.__class__ is list and value and all(v.__class__ is str for v in value):
            values[key] = [sub("\ufffd", v) for v in value]
    return values
