"""Parse XML safely: no entity expansion, no DTD loading, no network, and no DOCTYPE accepted.

Depth is capped by libxml2 (2048 levels); size by the caller (``limits.max_document_bytes``).

Pure: takes bytes, returns the tree or the findings that say why there is none. An e-invoice never needs a DOCTYPE,
so a document that declares one is refused (``IRR_SYNTAX``) whatever it declares. lxml reads the encoding from the
byte order mark or the XML declaration, so UTF-16 and ISO-8859-1 documents are read as their authors meant.
"""

from __future__ import annotations

from lxml import etree

from edi.model import Code, Finding, Layer

_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": True,  # text nodes over 10 MB (base64 attachments) are legitimate: document size limits bound them
    "remove_comments": False,
    "collect_ids": False,
}


class _RefuseExternal(etree.Resolver):  # type: ignore[misc]
    """Answers every request for an external resource (DTD, entity, XInclude) with nothing."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        return self.resolve_string("", context)


def new_parser() -> etree.XMLParser:
    """A parser with every dangerous feature off that never opens a file or a URL on a document's behalf."""
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    parser.resolvers.add(_RefuseExternal())
    return parser


_PARSER = new_parser()


def parse_xml(data: bytes) -> tuple[etree._ElementTree | None, list[Finding]]:
    """The parsed document, or None and the findings that explain why it cannot be used."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        return None, [_syntax_finding(exc)]
    except ValueError as exc:  # e.g. an encoding declaration lxml cannot honour
        return None, [Finding(Code.IRR_SYNTAX, Layer.PARSE, f"cannot read the XML: {exc}")]
    tree = root.getroottree()
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        return None, [
            Finding(
                Code.IRR_SYNTAX,
                Layer.PARSE,
                "the document declares a DOCTYPE; e-invoices must not (entities and DTDs are refused)",
                rule="DOCTYPE",
                line=1,
            )
        ]
    return tree, []


def _syntax_finding(exc: etree.XMLSyntaxError) -> Finding:
    entry = exc.error_log.last_error if exc.error_log else None
    line = exc.lineno or (entry.line if entry else None)
    message = entry.message if entry else str(exc)
    rule = entry.type_name if entry else None
    return Finding(Code.IRR_SYNTAX, Layer.PARSE, f"not well-formed XML: {message}", rule=rule, line=line)
