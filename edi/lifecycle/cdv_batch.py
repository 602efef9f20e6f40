"""The BR-FR-CDV Schematron XSLT rewritten to check many CDAR messages in one Saxon transformation, each on its own.

:func:`batch_stylesheet` is pure: it takes the official stylesheet (parsed by lxml, never changed or copied to disk),
runs edi's optimiser on it (:func:`edi.validate.xslt_optimise.optimise`), then

1. drops what the report carries and edi never reads (``svrl_findings`` reads only failed asserts and successful
   reports): the ``svrl:active-pattern`` written for each of the 28 patterns (each computing ``document-uri(/)``) and
   the ``svrl:ns-prefix-in-attribute-values``; measured on tiny messages: ~90 of ~270 us a message;
2. adds a named template, ``edi-batch``, that takes the messages as an array of strings (``$edi-messages``), parses
   each one (``parse-xml``: one call from Python for all, not one parse and one transformation per message) and
   applies the stylesheet's own templates to that document, writing its report inside an ``edi:report`` of its own,
   in the order given. Each message is a document of its own: every ``/`` and ``//`` of the rules is that document's,
   and what the rules fire on one cannot depend on another. A global variable reading the context document would
   have no context here (a dynamic error, which fails closed): the official file's one such variable
   (``$document-uri``) is never read.

``tests/lifecycle/test_cdv_batch.py`` runs the official file unchanged and this rewrite on valid and deliberately
broken messages, alone and batched, and checks that the same asserts fire with the same ids, flags, locations and
texts.

:class:`Batch` compiles the rewrite once on a Saxon processor and returns one report element per message; it raises
whatever Saxon raises (compilation, or a dynamic error), which :mod:`edi.lifecycle.validate` turns into findings.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from edi.validate.saxon import SAFE_PARSER, quiet
from edi.validate.xslt_optimise import optimise

XSL = "http://www.w3.org/1999/XSL/Transform"
SVRL = "http://purl.oclc.org/dsdl/svrl"
EDI = "urn:edi:cdv-batch"
MESSAGES = "edi-messages"
TEMPLATE = "edi-batch"
_UNREAD = (f"{{{SVRL}}}active-pattern", f"{{{SVRL}}}ns-prefix-in-attribute-values")
_BATCH = f"""<xsl:stylesheet xmlns:xsl="{XSL}" xmlns:edi="{EDI}" version="3.0">
  <xsl:param name="{MESSAGES}" as="array(xs:string)" select="[]"
             xmlns:xs="http://www.w3.org/2001/XMLSchema"/>
  <xsl:template name="{TEMPLATE}" version="3.0">
    <edi:reports>
      <xsl:for-each select="${MESSAGES}?*">
        <edi:report><xsl:apply-templates select="parse-xml(.)"/></edi:report>
      </xsl:for-each>
    </edi:reports>
  </xsl:template>
</xsl:stylesheet>"""


def batch_stylesheet(official: etree._ElementTree) -> etree._ElementTree:
    """The official BR-FR-CDV stylesheet, optimised, without the report elements edi never reads, with the
    ``edi-batch`` template. Raises ValueError when the stylesheet does not have the shape this relies on."""
    tree = optimise(official).stylesheet
    root = tree.getroot()
    roots = [t for t in root.iterchildren(f"{{{XSL}}}template") if t.get("match") == "/" and t.get("mode") is None]
    if len(roots) != 1:
        raise ValueError("the stylesheet has no single template for the document node")
    for element in list(root.iter(*_UNREAD)):
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)  # no tail text to keep: an element of the report, between instructions
    for output in root.iterchildren(f"{{{XSL}}}output"):
        output.set("indent", "no")  # the texts are read with their white space collapsed (svrl_findings)
    for child in etree.fromstring(_BATCH):
        root.append(child)
    return tree


class Batch:
    """The rewritten stylesheet compiled once on ``processor`` (a saxonche ``PySaxonProcessor``)."""

    def __init__(self, processor: Any, xslt: Path) -> None:
        official = etree.fromstring(xslt.read_bytes(), SAFE_PARSER).getroottree()
        text = etree.tostring(batch_stylesheet(official), encoding="unicode")
        self._processor = processor
        with quiet():
            self._executable = processor.new_xslt30_processor().compile_stylesheet(stylesheet_text=text)
        self._lock = threading.Lock()  # the messages are a parameter of the one executable

    def reports(self, texts: Sequence[str]) -> list[etree._Element]:
        """One report element (holding the SVRL of that message alone) per message text, in order. Raises what
        Saxon raises on a dynamic error (a message it cannot parse, for one), or RuntimeError on a report count that
        does not match."""
        if not texts:
            return []
        messages = self._processor.make_array([self._processor.make_string_value(t) for t in texts])
        with self._lock, quiet():
            self._executable.set_parameter(MESSAGES, messages)
            try:
                output = str(self._executable.call_template_returning_string(TEMPLATE))
            finally:
                self._executable.clear_parameters()
        reports = list(etree.fromstring(output.encode("utf-8"), SAFE_PARSER).iterchildren(f"{{{EDI}}}report"))
        if len(reports) != len(texts):
            raise RuntimeError(f"{len(reports)} reports for {len(texts)} messages")
        return reports
