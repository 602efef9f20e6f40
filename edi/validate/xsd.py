"""XSD validation against the official schemas, compiled once per process.

Reads the schema files the catalogue names; returns every error as a finding (code ``IRR_SYNTAX``, layer ``xsd``)
with its line, the XPath of the offending element and lxml's message, namespaces shortened to the usual prefixes.
Raises :class:`CatalogueError` only when a schema itself cannot be compiled (an installation fault, not bad input).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

from lxml import etree

from edi.errors import CatalogueError
from edi.model import Code, Document, Finding, Flow, Layer, evolve
from edi.validate.catalogue import Catalogue

MAX_ERRORS = 1000

_PREFIXES = {
    "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2": "cbc",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2": "cac",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2": "ext",
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2": "ubl",
    "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2": "ubl",
    "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100": "rsm",
    "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100": "ram",
    "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100": "udt",
    "urn:un:unece:uncefact:data:standard:QualifiedDataType:100": "qdt",
    "urn:ferd:CrossIndustryDocument:invoice:1p0": "rsm",
    "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12": "ram",
    "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:15": "udt",
}
_CLARK = re.compile(r"\{([^}]*)\}")


@cache
def compile_schema(path: Path) -> etree.XMLSchema:
    """The compiled schema at ``path`` (cached for the life of the process)."""
    try:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise CatalogueError(f"cannot compile the schema {path}: {exc}") from None


def validate_xsd(tree: etree._ElementTree, schema_path: Path) -> list[Finding]:
    """Every XSD error of ``tree`` against the schema at ``schema_path`` (empty when valid)."""
    schema = compile_schema(schema_path)
    if schema.validate(tree):
        return []
    findings = []
    entries = list(schema.error_log)
    for entry in entries[:MAX_ERRORS]:
        findings.append(
            Finding(
                Code.IRR_SYNTAX,
                Layer.XSD,
                readable(entry.message),
                rule=entry.type_name,
                line=entry.line or None,
                xpath=entry.path or None,
            )
        )
    if len(entries) > MAX_ERRORS:
        findings.append(Finding(Code.IRR_SYNTAX, Layer.XSD, f"{len(entries) - MAX_ERRORS} more XSD errors not listed"))
    return findings


def readable(message: str) -> str:
    """An lxml message with ``{namespace}name`` shortened to ``prefix:name`` for the usual namespaces."""

    def shorten(match: re.Match[str]) -> str:
        prefix = _PREFIXES.get(match.group(1))
        return f"{prefix}:" if prefix else match.group(0)

    return _CLARK.sub(shorten, message).strip()


class XsdValidation:
    """The ``xsd`` layer: validate each recognised document against the schema the catalogue names for it."""

    def __init__(self, catalogue: Catalogue, wanted: Callable[[Document, Flow], Sequence[str]] | None = None) -> None:
        self.catalogue = catalogue
        self.wanted = wanted

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with its XSD findings (none when valid), and ``xsd`` among the layers that ran."""
        if doc.tree is None or doc.syntax is None:
            return doc
        if self.wanted is not None and "xsd" not in self.wanted(doc, flow):
            return doc
        entry = self.catalogue.xsd_for(doc.syntax, doc.kind or "*", doc.profile or "unknown")
        if entry is None:
            raise CatalogueError(f"no schema in the catalogue for {doc.syntax} {doc.kind} {doc.profile}")
        found = validate_xsd(doc.tree, entry.schema)
        return evolve(doc, findings=(*doc.findings, *found), layers=(*doc.layers, "xsd"))
