"""The recipient directory: who may receive invoices, by which identifiers, and what they require.

Like Chorus Pro's directory of public structures: each recipient has identifiers (SIRET, SIREN, electronic address
BT-49, VAT id, GLN, ...), optional service codes, and says whether a service code (BT-10) and/or an engagement
number (BT-13) is mandatory. Reads a TOML or CSV file (by extension); raises :class:`DirectoryError` naming the file,
the entry and the problem. Lookups are pure.

TOML::

    [[recipients]]
    id = "ville-exemple"                    # the default queue name
    name = "Ville d'Exemple"
    identifiers = ["21930048000015"]
    service_code_required = true
    engagement_required = false
    service_or_engagement_required = false  # Chorus Pro's "EJ or service code"
    services = ["ACHATS", { code = "VOIRIE", engagement_required = true }]
    rules = ["br-fr"]                       # validation layers it requires, beyond the configured ones

CSV: a header row with ``id,name,identifiers,services,service_code_required,engagement_required,
service_or_engagement_required,rules``; lists are separated by ``;``, booleans are ``true``/``false`` (or yes/no, 1/0).
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edi.errors import DirectoryError
from edi.model import RULE_SETS, Party, normalise, siren_of

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_TRUE = {"true", "yes", "1", "y", "oui"}
_FALSE = {"false", "no", "0", "n", "non", ""}
RECIPIENT_KEYS = frozenset(
    {
        "id",
        "name",
        "identifiers",
        "services",
        "service_code_required",
        "engagement_required",
        "service_or_engagement_required",
        "rules",
    }
)
SERVICE_KEYS = frozenset({"code", "name", "engagement_required"})
FIND_CACHE = 10_000  # buyers whose recipient is remembered


def identities(party: Party) -> tuple[str, ...]:
    """Every normalised identifier of a party, then the SIRENs they imply, most specific first."""
    direct = [normalise(i) for i in party.identifiers]
    derived = [s for s in (siren_of(i) for i in direct) if s]
    return tuple(dict.fromkeys([*direct, *derived]))


@dataclass(frozen=True, slots=True)
class Service:
    """A service of a recipient (Chorus Pro "service exécutant"), known by its code (BT-10)."""

    code: str
    name: str | None = None
    engagement_required: bool = False


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient of invoices and its obligations."""

    id: str
    name: str | None = None
    identifiers: tuple[str, ...] = ()
    services: tuple[Service, ...] = ()
    service_code_required: bool = False
    engagement_required: bool = False
    service_or_engagement_required: bool = False
    rules: tuple[str, ...] = ()  # validation layers this recipient requires on top of the configured ones

    def service(self, code: str | None) -> Service | None:
        """The declared service with this code, if any."""
        if code is None:
            return None
        wanted = normalise(code)
        return next((s for s in self.services if normalise(s.code) == wanted), None)


@dataclass(frozen=True, slots=True)
class Directory:
    """Recipients, indexed by their normalised identifiers."""

    recipients: tuple[Recipient, ...] = ()
    _index: dict[str, Recipient] = field(init=False, repr=False, compare=False, default_factory=dict)
    _found: dict[Party, Recipient | None] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        index: dict[str, Recipient] = {}
        for recipient in self.recipients:
            for identifier in recipient.identifiers:
                key = normalise(identifier)
                other = index.get(key)
                if other is not None and other.id != recipient.id:
                    raise DirectoryError(
                        f"identifier {identifier!r} is declared by both {other.id!r} and {recipient.id!r}"
                    )
                index[key] = recipient
        object.__setattr__(self, "_index", index)

    def find(self, party: Party) -> Recipient | None:
        """The recipient a buyer designates: by any of its identifiers, else by the SIREN they imply (the answer
        for a party is remembered: the same buyers come again and again)."""
        try:
            return self._found[party]
        except KeyError:
            pass
        found = next((self._index[key] for key in identities(party) if key in self._index), None)
        if len(self._found) >= FIND_CACHE:
            self._found.clear()
        self._found[party] = found
        return found

    def get(self, recipient_id: str) -> Recipient | None:
        """The recipient with this directory id."""
        return next((r for r in self.recipients if r.id == recipient_id), None)


def load_directory(path: Path | None) -> Directory:
    """Read the directory at ``path`` (TOML or CSV); an empty directory when there is none."""
    if path is None:
        return Directory()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read the recipient directory: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DirectoryError(f"{path}: the recipient directory is not UTF-8") from None
    try:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            recipients = [_from_csv(row, n) for n, row in enumerate(rows, start=2)]
        else:
            data = tomllib.loads(text)
            unknown = set(data) - {"recipients"}
            if unknown:
                raise DirectoryError(f"unknown key {sorted(unknown)[0]!r} (expected [[recipients]])")
            recipients = [_from_toml(item, n) for n, item in enumerate(data.get("recipients", []), start=1)]
        _check_unique_ids(recipients)
        return Directory(tuple(recipients))
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(f"{path}: not valid TOML: {exc}") from None
    except csv.Error as exc:
        raise DirectoryError(f"{path}: not valid CSV: {exc}") from None
    except DirectoryError as exc:
        raise DirectoryError(f"{path}: {exc}") from None


def _check_unique_ids(recipients: Iterable[Recipient]) -> None:
    seen: set[str] = set()
    for recipient in recipients:
        if recipient.id in seen:
            raise DirectoryError(f"recipient id {recipient.id!r} is declared twice")
        seen.add(recipient.id)


def _from_toml(item: Any, number: int) -> Recipient:
    where = f"recipient #{number}"
    if not isinstance(item, Mapping):
        raise DirectoryError(f"{where}: expected a table")
    unknown = set(item) - RECIPIENT_KEYS
    if unknown:
        raise DirectoryError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    services = []
    for service in _list(item, "services", where):
        if isinstance(service, str):
            services.append(Service(_str(service, f"{where}: services")))
        elif isinstance(service, Mapping):
            bad = set(service) - SERVICE_KEYS
            if bad or "code" not in service:
                raise DirectoryError(f"{where}: a service needs a 'code' (and may have 'name', 'engagement_required')")
            services.append(
                Service(
                    str(service["code"]),
                    _opt_str(service.get("name"), f"{where}: service name"),
                    _bool(service.get("engagement_required", False), f"{where}: engagement_required"),
                )
            )
        else:
            raise DirectoryError(f"{where}: services: expected strings or tables")
    return _recipient(
        item.get("id"),
        where,
        name=_opt_str(item.get("name"), f"{where}: name"),
        identifiers=tuple(_str(i, f"{where}: identifiers") for i in _list(item, "identifiers", where)),
        services=tuple(services),
        rules=tuple(_str(r, f"{where}: rules") for r in _list(item, "rules", where)),
        flags={
            k: item.get(k, False)
            for k in ("service_code_required", "engagement_required", "service_or_engagement_required")
        },
    )


def _from_csv(row: Mapping[str, str | None], line: int) -> Recipient:
    where = f"line {line}"
    unknown = {k for k in row if k is not None} - RECIPIENT_KEYS
    if unknown:
        raise DirectoryError(f"unknown column {sorted(unknown)[0]!r}")
    if None in row:
        raise DirectoryError(f"{where}: more fields than columns")

    def split(key: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in (row.get(key) or "").split(";") if part.strip())

    return _recipient(
        (row.get("id") or "").strip(),
        where,
        name=(row.get("name") or "").strip() or None,
        identifiers=split("identifiers"),
        services=tuple(Service(code) for code in split("services")),
        rules=split("rules"),
        flags={
            k: (row.get(k) or "").strip().lower()
            for k in ("service_code_required", "engagement_required", "service_or_engagement_required")
        },
    )


def _recipient(
    rid: Any,
    where: str,
    *,
    name: str | None,
    identifiers: tuple[str, ...],
    services: tuple[Service, ...],
    rules: tuple[str, ...],
    flags: Mapping[str, Any],
) -> Recipient:
    if not isinstance(rid, str) or not _SAFE_ID.match(rid):
        raise DirectoryError(f"{where}: 'id' must be a safe name (letters, digits, '.', '_', '-'), got {rid!r}")
    if not identifiers:
        raise DirectoryError(f"{where} ({rid}): list at least one identifier (SIRET, SIREN, electronic address...)")
    unknown = [r for r in rules if r not in RULE_SETS]
    if unknown:
        raise DirectoryError(f"{where} ({rid}): rules: unknown rule set {unknown[0]!r} (known: {', '.join(RULE_SETS)})")
    return Recipient(
        id=rid,
        name=name,
        identifiers=identifiers,
        services=services,
        rules=rules,
        **{key: _bool(value, f"{where} ({rid}): {key}") for key, value in flags.items()},
    )


def _list(item: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = item.get(key, [])
    if not isinstance(value, list):
        raise DirectoryError(f"{where}: {key}: expected a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DirectoryError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _opt_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise DirectoryError(f"{where}: expected true or false, got {value!r}")
