"""The recipient directory (edi/route/directory.py): TOML and CSV forms, lookups, and every way a file can be wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.errors import DirectoryError
from edi.model import Party
from edi.route.directory import Directory, Recipient, Service, load_directory, normalise, siren_of
from tests.conftest import FLOWS

TOML = """
[[recipients]]
id = "ville-exemple"
name = "Ville d'Exemple"
identifiers = ["21930048000015", "0225:ville"]
service_code_required = true
services = ["ACHATS", "VOIRIE"]

[[recipients]]
id = "dupont"
identifiers = ["404040404"]
engagement_required = true
service_or_engagement_required = true
"""

CSV = """\
id,name,identifiers,services,service_code_required,engagement_required,service_or_engagement_required
ville-exemple,Ville d'Exemple,21930048000015;0225:ville,ACHATS;VOIRIE,true,false,false
dupont,,404040404,,no,yes,1
"""

DIRECTORY = Directory(
    (
        Recipient("ville", "Ville", ("21930048000015",)),
        Recipient("dupont", None, ("404040404",)),
        Recipient("hopital", None, ("FR12260045200",)),
        Recipient("initech", None, ("0225:initech-fr", "5790000435951")),
        Recipient("siege", None, ("55566677700011",)),
        Recipient("groupe", None, ("555666777",)),
    )
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_toml(tmp_path: Path, text: str) -> Directory:
    return load_directory(write(tmp_path, "directory.toml", text))


def load_csv(tmp_path: Path, text: str) -> Directory:
    return load_directory(write(tmp_path, "directory.csv", text))


# -- the two forms -----------------------------------------------------------------------------------------------


def test_toml_and_csv_forms_give_the_same_recipients(tmp_path: Path) -> None:
    """The same directory written as TOML and as CSV loads to equal recipients."""
    from_toml = load_toml(tmp_path, TOML)
    from_csv = load_csv(tmp_path, CSV)
    assert from_toml.recipients == from_csv.recipients
    assert from_toml.recipients == (
        Recipient(
            id="ville-exemple",
            name="Ville d'Exemple",
            identifiers=("21930048000015", "0225:ville"),
            services=(Service("ACHATS"), Service("VOIRIE")),
            service_code_required=True,
        ),
        Recipient(
            id="dupont",
            identifiers=("404040404",),
            engagement_required=True,
            service_or_engagement_required=True,
        ),
    )


def test_csv_file_extension_is_case_insensitive_and_bom_is_ignored(tmp_path: Path) -> None:
    """A spreadsheet export (DIRECTORY.CSV, UTF-8 with BOM) reads like any CSV directory."""
    path = tmp_path / "DIRECTORY.CSV"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode("utf-8"))
    assert [r.id for r in load_directory(path).recipients] == ["ville-exemple", "dupont"]


def test_services_as_strings_and_as_tables(tmp_path: Path) -> None:
    """A service is a code, or a table with a code, a name and its own engagement obligation."""
    directory = load_toml(
        tmp_path,
        """
        [[recipients]]
        id = "ville"
        identifiers = ["21930048000015"]
        services = ["ACHATS", { code = "VOIRIE", name = "Voirie", engagement_required = true }, { code = "ECOLES" }]
        """,
    )
    (ville,) = directory.recipients
    assert ville.services == (
        Service("ACHATS"),
        Service("VOIRIE", "Voirie", engagement_required=True),
        Service("ECOLES", None, engagement_required=False),
    )


def test_recipient_service_lookup_ignores_case_and_spaces() -> None:
    """Recipient.service finds a declared service by code whatever the case and spacing, None otherwise."""
    ville = Recipient("ville", identifiers=("1",), services=(Service("VOIRIE"), Service("ACHATS")))
    assert ville.service("voirie") == Service("VOIRIE")
    assert ville.service(" Ach ats ") == Service("ACHATS")
    assert ville.service("ECOLES") is None
    assert ville.service(None) is None


def test_sample_directory_loads() -> None:
    """flows/directory.toml loads, with its three recipients and their obligations."""
    directory = load_directory(FLOWS / "directory.toml")
    assert [r.id for r in directory.recipients] == ["ville-exemple", "ch-exemple", "dupont"]
    ville = directory.get("ville-exemple")
    assert ville is not None and ville.service_code_required and ville.service("voirie") is not None
    hospital = directory.get("ch-exemple")
    assert hospital is not None and hospital.engagement_required
    assert directory.find(Party(legal_id="40404040400012")) == directory.get("dupont")


def test_no_directory_is_empty() -> None:
    """load_directory(None) is an empty directory that finds nobody."""
    directory = load_directory(None)
    assert directory.recipients == ()
    assert directory.find(Party(legal_id="21930048000015")) is None
    assert directory.get("anything") is None


# -- lookups -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("party", "expected"),
    [
        (Party(legal_id="21930048000015"), "ville"),
        (Party(legal_id="40404040400012"), "dupont"),
        (Party(vat_id="FR83404040404"), "dupont"),
        (Party(vat_id="fr 83 404 040 404"), "dupont"),
        (Party(endpoint="0225:initech-fr"), "initech"),
        (Party(endpoint="0225:INITECH-FR"), "initech"),
        (Party(ids=("5790000435951",)), "initech"),
        (Party(legal_id="219 300 480 00015"), "ville"),
        (Party(legal_id=" 21930048000015\t"), "ville"),
        (Party(vat_id="FR12260045200"), "hopital"),
        (Party(legal_id="55566677700011"), "siege"),
        (Party(legal_id="55566677700029"), "groupe"),
        (Party(vat_id="FR01555666777"), "groupe"),
        (Party(legal_id="000000000", vat_id="FR83404040404"), "dupont"),
        (Party(legal_id="99999999999999", endpoint="0225:initech-fr"), "initech"),
    ],
    ids=[
        "siret",
        "siren-from-siret",
        "siren-from-fr-vat",
        "fr-vat-with-spaces-lower-case",
        "electronic-address",
        "electronic-address-upper-case",
        "other-id-gln",
        "siret-with-spaces",
        "siret-with-surrounding-whitespace",
        "declared-vat",
        "direct-siret-wins-over-its-siren",
        "sibling-siret-finds-the-siren",
        "vat-finds-the-siren",
        "second-identifier",
        "address-when-legal-id-unknown",
    ],
)
def test_find_by_any_identifier(party: Party, expected: str) -> None:
    """A buyer is found by SIRET, by the SIREN its SIRET or FR VAT number implies, by address or other id."""
    found = DIRECTORY.find(party)
    assert found is not None and found.id == expected


@pytest.mark.parametrize(
    "party",
    [
        Party(legal_id="219300480"),
        Party(legal_id="21930048000023"),
        Party(vat_id="DE404040404"),
        Party(vat_id="FR83404040405"),
        Party(name="Ville"),
        Party(),
    ],
    ids=[
        "siren-of-a-declared-siret",
        "sibling-of-a-declared-siret",
        "foreign-vat",
        "other-siren",
        "name-only",
        "empty",
    ],
)
def test_find_nobody(party: Party) -> None:
    """A SIREN does not designate a recipient declared by SIRET; unknown ids and names find nobody."""
    assert DIRECTORY.find(party) is None


@pytest.mark.parametrize(
    ("identifier", "siren"),
    [
        ("12345678200010", "123456782"),
        ("123 456 782 00010", "123456782"),
        ("FR40123456782", "123456782"),
        ("frxy123456782", "123456782"),
        ("123456782", None),
        ("1234567820001", None),
        ("DE123456782", None),
        ("FR401234567820", None),
    ],
    ids=lambda v: repr(v),
)
def test_siren_of(identifier: str, siren: str | None) -> None:
    """siren_of reads the SIREN inside a SIRET or a French VAT number, and nothing else."""
    assert siren_of(identifier) == siren


def test_get_by_directory_id() -> None:
    """get() finds a recipient by its directory id, exactly."""
    assert DIRECTORY.get("dupont") is not None
    assert DIRECTORY.get("Dupont") is None


identifier_text = st.text(max_size=20)
parties = st.builds(
    Party,
    name=st.none() | st.text(max_size=10),
    legal_id=st.none() | identifier_text,
    legal_scheme=st.none() | st.text(max_size=4),
    vat_id=st.none() | identifier_text,
    ids=st.lists(identifier_text, max_size=3).map(tuple),
    endpoint=st.none() | identifier_text,
    endpoint_scheme=st.none() | st.text(max_size=4),
)


@given(parties)
def test_find_is_total(party: Party) -> None:
    """For any party made of any identifier strings, find returns a recipient or None and never raises."""
    found = DIRECTORY.find(party)
    assert found is None or found in DIRECTORY.recipients


@given(st.lists(st.lists(st.text(min_size=1, max_size=16), min_size=1, max_size=3), max_size=5), parties)
def test_generated_directory_finds_each_declared_identifier(identifiers: list[list[str]], party: Party) -> None:
    """For recipients with arbitrary identifiers: a clash is a DirectoryError; else each identifier finds its owner
    and any party finds a recipient or None."""
    recipients = tuple(Recipient(f"r{n}", identifiers=tuple(ids)) for n, ids in enumerate(identifiers))
    try:
        directory = Directory(recipients)
    except DirectoryError as exc:
        assert "declared by both" in str(exc)
        return
    for recipient in recipients:
        for identifier in recipient.identifiers:
            assert directory.find(Party(legal_id=identifier)) is recipient
    found = directory.find(party)
    assert found is None or found in recipients


@given(st.sampled_from([i for r in DIRECTORY.recipients for i in r.identifiers]), st.data())
def test_declared_identifier_is_found_whatever_spacing_and_case(identifier: str, data: st.DataObject) -> None:
    """Any declared identifier, re-spaced and re-cased, finds the recipient that declares it."""
    spaced = "".join(
        data.draw(st.sampled_from(["", " ", "\t"])) + data.draw(st.sampled_from([c, c.lower(), c.upper()]))
        for c in identifier
    )
    found = DIRECTORY.find(Party(legal_id=spaced))
    assert found is not None and identifier in found.identifiers


@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    """Normalising twice is normalising once, and the result holds no whitespace."""
    once = normalise(text)
    assert normalise(once) == once
    assert not any(c.isspace() for c in once)


# -- errors ------------------------------------------------------------------------------------------------------


def test_identifier_declared_by_two_recipients_names_both(tmp_path: Path) -> None:
    """An identifier two recipients declare (even spelled differently) is an error naming both."""
    path = write(
        tmp_path,
        "directory.toml",
        """
        [[recipients]]
        id = "first"
        identifiers = ["404040404"]

        [[recipients]]
        id = "second"
        identifiers = ["404 040 404"]
        """,
    )
    with pytest.raises(DirectoryError, match=r"'first'.*'second'") as raised:
        load_directory(path)
    assert str(path) in str(raised.value)


def test_identifier_declared_twice_by_values_names_both() -> None:
    """Building a Directory from two recipients sharing an identifier raises, naming both."""
    with pytest.raises(DirectoryError, match=r"'a'.*'b'"):
        Directory((Recipient("a", identifiers=("X1",)), Recipient("b", identifiers=("x1",))))


def test_one_recipient_may_repeat_its_own_identifier(tmp_path: Path) -> None:
    """A recipient listing the same identifier twice is not a conflict."""
    directory = load_toml(tmp_path, '[[recipients]]\nid = "a"\nidentifiers = ["404040404", "404 040 404"]\n')
    assert directory.find(Party(legal_id="404040404")) == directory.get("a")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "directory.toml",
            '[[recipients]]\nid = "a"\nidentifiers = ["1"]\n[[recipients]]\nid = "a"\nidentifiers = ["2"]\n',
        ),
        ("directory.csv", "id,identifiers\na,1\na,2\n"),
    ],
    ids=["toml", "csv"],
)
def test_duplicate_recipient_id(tmp_path: Path, name: str, text: str) -> None:
    """Two recipients with the same id are an error naming the id and the file."""
    path = write(tmp_path, name, text)
    with pytest.raises(DirectoryError, match=r"recipient id 'a' is declared twice") as raised:
        load_directory(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        ("directory.toml", '[[recipient]]\nid = "a"\nidentifiers = ["1"]\n', "'recipient'"),
        (
            "directory.toml",
            '[[recipients]]\nid = "a"\nidentifiers = ["1"]\nservice_required = true\n',
            "'service_required'",
        ),
        (
            "directory.toml",
            '[[recipients]]\nid = "a"\nidentifiers = ["1"]\nservices = [{ code = "X", ej = true }]\n',
            "code",
        ),
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = ["1"]\nservices = [{ name = "X" }]\n', "code"),
        ("directory.csv", "id,identifiers,siret\na,1,2\n", "'siret'"),
    ],
    ids=["toml-top-level", "toml-recipient", "toml-service", "toml-service-without-code", "csv-column"],
)
def test_unknown_key_or_column(tmp_path: Path, name: str, text: str, key: str) -> None:
    """An unknown key (at any level) or column is an error naming it and the file."""
    path = write(tmp_path, name, text)
    with pytest.raises(DirectoryError, match=key) as raised:
        load_directory(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = ["1"]\nengagement_required = 1\n'),
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = ["1"]\nengagement_required = "maybe"\n'),
        (
            "directory.toml",
            '[[recipients]]\nid = "a"\nidentifiers = ["1"]\nservices = [{ code = "X", engagement_required = 2 }]\n',
        ),
        ("directory.csv", "id,identifiers,service_code_required\na,1,maybe\n"),
    ],
    ids=["toml-integer", "toml-word", "toml-service-flag", "csv-word"],
)
def test_bad_boolean(tmp_path: Path, name: str, text: str) -> None:
    """A flag that is not a boolean is an error naming the flag and what was found."""
    with pytest.raises(DirectoryError, match=r"engagement_required|service_code_required") as raised:
        load_directory(write(tmp_path, name, text))
    assert "expected true or false" in str(raised.value)


@pytest.mark.parametrize(
    ("spelling", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("1", True),
        ("oui", True),
        ("false", False),
        ("no", False),
        ("0", False),
        ("non", False),
        ("", False),
    ],
)
def test_csv_boolean_spellings(tmp_path: Path, spelling: str, value: bool) -> None:
    """CSV flags accept true/false, yes/no, 1/0, oui/non in any case; an empty cell is false."""
    directory = load_csv(tmp_path, f"id,identifiers,engagement_required\na,1,{spelling}\n")
    assert directory.recipients[0].engagement_required is value


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("directory.toml", '[[recipients]]\nid = "a"\n'),
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = []\n'),
        ("directory.csv", "id,identifiers\na,\n"),
        ("directory.csv", "id,identifiers\na, ; \n"),
        ("directory.csv", "id,name\na,A\n"),
    ],
    ids=["toml-absent", "toml-empty-list", "csv-empty-cell", "csv-only-separators", "csv-no-column"],
)
def test_recipient_without_identifier(tmp_path: Path, name: str, text: str) -> None:
    """A recipient that lists no identifier is an error naming it."""
    with pytest.raises(DirectoryError, match=r"\(a\): list at least one identifier"):
        load_directory(write(tmp_path, name, text))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("directory.toml", '[[recipients]]\nidentifiers = ["1"]\n', "'id' must be a safe name"),
        ("directory.toml", '[[recipients]]\nid = "../etc"\nidentifiers = ["1"]\n', "'id' must be a safe name"),
        ("directory.toml", '[[recipients]]\nid = 7\nidentifiers = ["1"]\n', "'id' must be a safe name"),
        ("directory.csv", "id,identifiers\n,1\n", "line 2: 'id' must be a safe name"),
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = "1"\n', "identifiers: expected a list"),
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = [404040404]\n', "expected a non-empty string"),
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = ["  "]\n', "expected a non-empty string"),
        ("directory.toml", '[[recipients]]\nid = "a"\nidentifiers = ["1"]\nservices = [3]\n', "strings or tables"),
        ("directory.toml", 'recipients = ["a"]\n', "recipient #1: expected a table"),
        ("directory.csv", "id,identifiers\na,1,extra\n", "line 2: more fields than columns"),
    ],
    ids=[
        "toml-no-id",
        "toml-unsafe-id",
        "toml-id-not-text",
        "csv-empty-id",
        "identifiers-not-a-list",
        "identifier-not-text",
        "identifier-blank",
        "service-not-text",
        "recipient-not-a-table",
        "csv-extra-field",
    ],
)
def test_bad_entries(tmp_path: Path, name: str, text: str, message: str) -> None:
    """Each malformed entry is an error saying what is wrong, with the file name."""
    path = write(tmp_path, name, text)
    with pytest.raises(DirectoryError, match=message) as raised:
        load_directory(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_missing_file(tmp_path: Path) -> None:
    """A directory file that does not exist is a DirectoryError naming the path."""
    path = tmp_path / "nowhere.toml"
    with pytest.raises(DirectoryError, match="cannot read") as raised:
        load_directory(path)
    assert str(path) in str(raised.value)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    """A folder given as the directory is a DirectoryError naming the path."""
    with pytest.raises(DirectoryError, match="cannot read") as raised:
        load_directory(tmp_path)
    assert str(tmp_path) in str(raised.value)


@pytest.mark.parametrize("name", ["directory.toml", "directory.csv"])
def test_not_utf8(tmp_path: Path, name: str) -> None:
    """A directory in Latin-1 is a DirectoryError naming the path and the encoding problem."""
    path = tmp_path / name
    path.write_bytes("id,identifiers\nvillé,1\n".encode("latin-1"))
    with pytest.raises(DirectoryError, match="not UTF-8") as raised:
        load_directory(path)
    assert str(path) in str(raised.value)


def test_invalid_toml(tmp_path: Path) -> None:
    """A TOML syntax error is a DirectoryError naming the path."""
    path = write(tmp_path, "directory.toml", "[[recipients]\nid = \n")
    with pytest.raises(DirectoryError, match="not valid TOML") as raised:
        load_directory(path)
    assert str(path) in str(raised.value)


def test_unparseable_csv_is_a_directory_error(tmp_path: Path) -> None:
    """A CSV the csv module cannot parse (a field over its 128 KiB limit) is a DirectoryError naming the path."""
    path = write(tmp_path, "directory.csv", "id,identifiers\na," + "1" * 200_000 + "\n")
    with pytest.raises(DirectoryError) as raised:
        load_directory(path)
    assert str(path) in str(raised.value)
