"""Offline validation (``edi validate``): check XML and Factur-X PDF files against chosen layers, no workspace.

Reads the files it is given; writes nothing; never raises on bad input (a file that cannot be read or is not an
invoice gets findings like any other). Uses the same stages as a batch run (safe parsing, recognition, XSD,
business rules) and one :class:`RulesRunner` for all files, so thousands of files pay the XSLT compilation once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edi.ack import finding_dict
from edi.config import LimitsSettings
from edi.ingest.expand import Expand
from edi.ingest.stages import CheckPdfProfile, Parse, Recognise
from edi.model import RULE_SETS, Code, Document, Finding, Flow, Layer
from edi.pipeline import DocumentStage, limits_of
from edi.validate.catalogue import load_catalogue
from edi.validate.schematron import BusinessRules, runner_for
from edi.validate.xsd import XsdValidation

DEFAULT_LAYERS = ("xsd", "en16931")


@dataclass(frozen=True, slots=True)
class FileResult:
    """What validation says of one file."""

    path: Path
    document: Document

    @property
    def valid(self) -> bool:
        """Whether no fatal finding stands (warnings are allowed)."""
        return self.document.accepted

    def as_dict(self) -> dict[str, Any]:
        """The result as ``edi validate --json`` prints it."""
        doc = self.document
        return {
            "file": str(self.path),
            "valid": self.valid,
            "syntax": doc.syntax,
            "profile": doc.profile,
            "layers": list(doc.layers),
            "findings": [finding_dict(f) for f in doc.findings],
        }


def parse_layers(text: str) -> tuple[str, ...]:
    """``xsd,en16931`` as a tuple of known layer names, in run order; ValueError naming an unknown one."""
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in RULE_SETS]
    if unknown or not wanted:
        raise ValueError(f"unknown layer {unknown[0]!r}" if unknown else "no layer named")
    return tuple(r for r in RULE_SETS if r in wanted)


class Checker:
    """Validates files one after another with compiled schemas and rules shared between them."""

    def __init__(self, layers: Sequence[str] = DEFAULT_LAYERS, limits: LimitsSettings | None = None) -> None:
        catalogue = load_catalogue()
        self.layers = tuple(layers)
        self.settings = limits or LimitsSettings()
        self.expand = Expand(limits_of(self.settings), self.settings.pdf_seconds)
        wanted = lambda doc, flow: self.layers  # noqa: E731 - the same layers for every file
        self.stages: list[DocumentStage] = [
            Parse(),
            Recognise(),
            CheckPdfProfile(),
            XsdValidation(catalogue, wanted),
            BusinessRules(runner_for(catalogue, self.settings.validate_seconds), wanted),
        ]

    def check(self, path: Path) -> FileResult:
        """Validate one file."""
        flow = Flow("", "", path.name, 0, "", datetime.now(UTC), path)
        try:
            size = path.stat().st_size
            if size > self.settings.max_flow_bytes:
                return self._refused(path, Code.IRR_TAILLE_F, f"the file is {size} bytes, over the limit")
            data = path.read_bytes()
        except OSError as exc:
            return self._refused(path, Code.IRR_TYPE_F, f"cannot read the file: {exc.strerror}")
        doc = self.expand.document(1, path.name, data, hashlib.sha256(data).hexdigest())
        for stage in self.stages:
            doc = stage(doc, flow)
        return FileResult(path, doc)

    def check_all(self, paths: Iterable[Path]) -> Iterator[FileResult]:
        """Validate files in the order given."""
        for path in paths:
            yield self.check(path)

    def _refused(self, path: Path, code: Code, message: str) -> FileResult:
        doc = Document(1, path.name, 0, "", findings=(Finding(code, Layer.INTAKE, message),))
        return FileResult(path, doc)
