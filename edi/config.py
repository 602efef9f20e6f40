"""Settings: the only reader of ``config.toml``.

``load_settings(path)`` reads the file once into a frozen :class:`Settings`. Every key has a default, so an empty file
is valid. Relative paths are resolved against the folder of the configuration file. Raises :class:`ConfigError` with a
one-line message naming the key for an unknown key, a value of the wrong type or a value out of range (a cron line
that is not one, a time zone the system does not know). What the file refers to elsewhere (the recipient directory,
the queues routing rules name) is checked by :mod:`edi.queues`.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edi import cron
from edi.errors import ConfigError
from edi.model import RULE_SETS, Layer
from edi.workspace import Layout

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# a bare address (RFC 5321 dot-atom local part, a dotted domain): no display name, no spaces, no line breaks
EMAIL_ADDRESS = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
LOG_LEVELS = ("debug", "info", "warning", "error")
REJECT = "reject"


def _safe_name(value: str) -> str:
    if not SAFE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a safe folder name (letters, digits, '.', '_', '-'; at most 64)")
    return value


def _safe_names(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_safe_name(value) for value in values)


def _addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not EMAIL_ADDRESS.fullmatch(value):
            raise ValueError(f"{value!r} is not a plain e-mail address (local@domain, no name, no spaces)")
    return values


def _non_negative(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{value} must be a finite number, not negative")
    return value


def _positive_float(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{value} must be a positive number")
    return value


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError(f"{value} must be positive")
    return value


def _port(value: int) -> int:
    if not 0 < value < 65536:
        raise ValueError(f"{value} must be a TCP port, 1 to 65535")
    return value


def _page_size(value: int) -> int:
    if not 1 <= value <= 1000:
        raise ValueError(f"{value} must be 1 to 1000")
    return value


def _token(value: str) -> str | None:
    if not value:
        return None  # "" is no token: only an operator's session reads /metrics
    if len(value) < 16 or not value.isprintable() or value != value.strip():
        raise ValueError("give a random token of at least 16 printable characters, no spaces around it")
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones ("Europe")
        raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. 'Europe/Paris', or 'UTC')") from None
    return value


def _check_rule_sets(key: str, values: tuple[str, ...]) -> None:
    for rule in values:
        if rule not in RULE_SETS:
            raise ValueError(f"{key}: unknown rule set {rule!r} (known: {', '.join(RULE_SETS)})")


def _check(fn: Callable[[Any], Any]) -> dict[str, Any]:
    return {"check": fn}


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    """Where every folder and the SQLite store live."""

    root: Path = Path("var")
    exclusive: bool = True
    inbox: Path | None = None  # default <root>/inbox; elsewhere (an SFTP chroot), but on the same filesystem
    acks: Path | None = None  # default <root>/acks

    def layout(self) -> Layout:
        """The folders of this workspace."""
        return Layout(self.root, self.inbox, self.acks)


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """How files are picked up from the inbox."""

    min_age_seconds: float = field(default=2.0, metadata=_check(_non_negative))
    ignore: tuple[str, ...] = ("*.tmp", "*.part", "*.filepart", "*.crdownload", "~*")
    incomplete_grace_seconds: float = field(default=900.0, metadata=_check(_non_negative))


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    """How much one flow may hold (beyond, it is refused, ``IRR_TAILLE_F``, rather than read), and how long reading a
    PDF and running a document's business rules may take."""

    max_flow_bytes: int = field(default=100 * 1024 * 1024, metadata=_check(_positive))
    max_document_bytes: int = field(default=20 * 1024 * 1024, metadata=_check(_positive))
    max_uncompressed_bytes: int = field(default=1024 * 1024 * 1024, metadata=_check(_positive))
    max_compression_ratio: float = field(default=200.0, metadata=_check(_non_negative))
    max_members: int = field(default=1000, metadata=_check(_positive))
    pdf_seconds: float = field(default=20.0, metadata=_check(_non_negative))
    validate_seconds: float = field(default=30.0, metadata=_check(_non_negative))


@dataclass(frozen=True, slots=True)
class SenderSettings:
    """A sender (a partner): who drops files into ``inbox/<id>/``, for which sellers it deposits invoices, for which
    directory recipients it returns lifecycle statuses, and who hears about its invoices."""

    id: str = field(metadata=_check(_safe_name))
    sellers: tuple[str, ...] = ()
    name: str | None = None
    rules: tuple[str, ...] | None = None  # the validation layers for this sender, instead of [validation] rules
    grace: tuple[str, ...] = ()  # layers whose fatal findings are only warnings for this sender (grace period)
    recipients: tuple[str, ...] = field(default=(), metadata=_check(_safe_names))  # directory ids it speaks for
    email: tuple[str, ...] = field(default=(), metadata=_check(_addresses))  # contact addresses for notifications

    def __post_init__(self) -> None:
        if not self.sellers and not self.recipients:
            raise ValueError(
                'sellers: list the SIREN / SIRET / VAT ids this sender may deposit for, or ["*"] '
                "(a partner that only returns statuses has sellers = [] and lists its recipients)"
            )
        if "*" in self.sellers and len(self.sellers) > 1:
            raise ValueError('sellers: "*" means any seller and stands alone')
        _check_rule_sets("rules", self.rules or ())
        _check_rule_sets("grace", self.grace)

    @property
    def any_seller(self) -> bool:
        """Whether this sender may deposit for any seller (a dematerialisation operator)."""
        return self.sellers == ("*",)


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """Send the documents of a recipient (optionally of one service, or from one sender) to a named queue."""

    queue: str = field(metadata=_check(_safe_name))
    recipient: str = "*"
    service: str | None = None
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """Recipient directory, declared queues, rules and what to do with unknown recipients."""

    unknown_recipient: str = field(default=REJECT, metadata=_check(_safe_name))
    directory: Path | None = None
    queues: tuple[str, ...] = field(default=(), metadata=_check(_safe_names))  # queues no recipient is named after
    rules: tuple[RoutingRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ValidationSettings:
    """Which validation layers run."""

    rules: tuple[str, ...] = ("xsd",)

    def __post_init__(self) -> None:
        _check_rule_sets("rules", self.rules)


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """How ``edi watch`` notices new files."""

    rescan_seconds: float = field(default=30.0, metadata=_check(_positive_float))


JOBS = ("batch", "retention", "report", "notify", "digest")


@dataclass(frozen=True, slots=True)
class JobSettings:
    """One scheduled job: what it does and when (a crontab line or an interval)."""

    job: str
    name: str | None = None
    cron: str | None = None  # minute hour day-of-month month day-of-week, as in a crontab
    every_seconds: float | None = None
    misfire_grace_seconds: float = field(default=300.0, metadata=_check(_non_negative))

    def __post_init__(self) -> None:
        if self.job not in JOBS:
            raise ValueError(f"job: {self.job!r} is not one of {', '.join(JOBS)}")
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError(f"job {self.label!r}: give either cron or every_seconds")
        if self.cron is not None:
            try:
                cron.parse(self.cron)
            except ValueError as exc:
                raise ValueError(f"job {self.label!r}: cron {self.cron!r}: {exc}") from None
        if self.every_seconds is not None and not (math.isfinite(self.every_seconds) and self.every_seconds > 0):
            raise ValueError(f"job {self.label!r}: every_seconds must be positive")

    @property
    def label(self) -> str:
        """The job's name, or what it does."""
        return self.name or self.job


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """What ``edi schedule`` runs, and in which time zone its cron lines are read."""

    timezone: str = field(default="UTC", metadata=_check(_time_zone))
    jobs: tuple[JobSettings, ...] = ()

    def __post_init__(self) -> None:
        labels = [j.label for j in self.jobs]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"jobs: two jobs are called {twice[0]!r}: give them different names")


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """What the retention job does with finished flows older than ``days``."""

    days: int = field(default=3650, metadata=_check(_positive))
    action: str = "delete"  # or "move"
    move_to: Path | None = None

    def __post_init__(self) -> None:
        if self.action not in ("delete", "move"):
            raise ValueError(f"action: {self.action!r} is not delete or move")
        if self.action == "move" and self.move_to is None:
            raise ValueError("move_to: say where old flows are moved to")


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Where the daily flow report is written (default: <workspace>/reports)."""

    folder: Path | None = None


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """What edi logs to standard error."""

    level: str = "warning"

    def __post_init__(self) -> None:
        if self.level not in LOG_LEVELS:
            raise ValueError(f"level: {self.level!r} is not one of {', '.join(LOG_LEVELS)}")


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """Where ``edi serve`` listens and how long a console session lives."""

    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=_check(_port))
    idle_minutes: float = field(default=30.0, metadata=_check(_positive_float))
    secure_cookies: bool = False
    page_size: int = field(default=50, metadata=_check(_page_size))
    metrics_token: str | None = field(default=None, metadata=_check(_token))  # /metrics without a session
    # the dashboard counts a delivered invoice as waiting for its recipient once this long without a status (204-212)
    waiting_days: float = field(default=7.0, metadata=_check(_positive_float))

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("host: give an address to listen on, e.g. 127.0.0.1")


SECURITY = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
# the statuses a notification can be about: edi's own decisions (200, 213, 501) and those a recipient sets (201-212)
NOTIFIED_STATUSES = (*(str(code) for code in range(200, 214)), "501")


def _optional_address(value: str) -> str | None:
    if not value:
        return None
    return _addresses((value,))[0]


def _host(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9._:\[\]-]{1,253}", value):
        raise ValueError(f"{value!r} is not a host name or an address")
    return value


def _or_none(value: str) -> str | None:
    return value or None


def _optional_zone(value: str) -> str | None:
    return _time_zone(value) if value else None


def _statuses(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if value not in NOTIFIED_STATUSES:
            raise ValueError(f"{value!r} is not a status a notification is about (200 to 213, 501)")
    return values


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    """How edi mails each sender's contact addresses (``[[senders]] email``) about its invoices' statuses: the SMTP
    server, what goes at once and what waits for the day's digest, how sending is retried. Off without a host."""

    smtp_host: str = field(default="", metadata=_check(_host))  # "" (the default): no notification is queued
    smtp_port: int | None = field(default=None, metadata=_check(_port))  # default by security: 25, 587 or 465
    security: str = "starttls"
    username: str | None = field(default=None, metadata=_check(_or_none))
    password: str | None = field(default=None, repr=False, metadata=_check(_or_none))
    from_address: str | None = field(default=None, metadata=_check(_optional_address))
    ca_file: Path | None = None  # certificates to trust instead of the system's (a private relay's own CA)
    immediate: tuple[str, ...] = field(default=("213", "501", "210"), metadata=_check(_statuses))
    timezone: str | None = field(default=None, metadata=_check(_optional_zone))  # of the digests' days
    timeout_seconds: float = field(default=10.0, metadata=_check(_positive_float))
    send_seconds: float = field(default=30.0, metadata=_check(_positive_float))
    retry_seconds: float = field(default=60.0, metadata=_check(_positive_float))
    retry_max_seconds: float = field(default=3600.0, metadata=_check(_positive_float))
    give_up_seconds: float = field(default=172800.0, metadata=_check(_positive_float))

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"security: {self.security!r} is not one of {', '.join(SECURITY)}")
        if not self.smtp_host:
            return
        if self.from_address is None:
            raise ValueError("from_address: say which address notifications come from")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: give both, or neither")
        if self.username is not None and self.security == "none":
            raise ValueError('username: a password is never sent in clear: use security = "starttls" or "tls"')

    @property
    def enabled(self) -> bool:
        """Whether notifications are on (a host is set)."""
        return bool(self.smtp_host)

    @property
    def port(self) -> int:
        """The SMTP port: the one set, else the usual one for the security."""
        return self.smtp_port or DEFAULT_PORTS[self.security]


API_MAX_FLOW_BYTES = 100 * 1024 * 1024  # the standard's limit on a deposited file (XP Z12-013 createFlow: 100 MB)
_CONSOLE_PREFIXES = (
    "/login",
    "/logout",
    "/healthz",
    "/static",
    "/dashboard",
    "/flows",
    "/invoices",
    "/metrics",
    "/rules",
    "/oauth2",
)
_HOST_PATTERN = re.compile(r"(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")


def _base_path(value: str) -> str:
    if not re.fullmatch(r"(?:/[A-Za-z0-9._-]+)+", value):
        raise ValueError(f"{value!r} is not a path like '/afnor-flow' (a '/', then letters, digits, '.', '_', '-')")
    if any(value == p or value.startswith((p + "/", p + ".")) or p.startswith(value + "/") for p in _CONSOLE_PREFIXES):
        raise ValueError(f"{value!r} is a path of the console's own; choose another (the default is '/afnor-flow')")
    return value


def _allowed_hosts(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not _HOST_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a host name (optionally '*.' before it, ':port' after it)")
    return tuple(v.lower() for v in values)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The HTTP deposit API (AFNOR XP Z12-013 Flow Service) that ``edi serve`` serves beside the console: its path,
    its clients' tokens, its limits, and where webhooks may call (docs/api.md)."""

    enabled: bool = True
    base_path: str = field(default="/afnor-flow", metadata=_check(_base_path))
    token_seconds: float = field(default=3600.0, metadata=_check(_positive_float))  # an OAuth2 access token's life
    bearer_days: float = field(default=365.0, metadata=_check(_positive_float))  # a long-lived token's, by default
    rate_per_minute: int = field(default=600, metadata=_check(_positive))  # requests per client, then 429
    rate_burst: int = field(default=60, metadata=_check(_positive))  # ... of which this many at once
    guess_burst: int = field(default=10, metadata=_check(_positive))  # unproven authentications per address ...
    guesses_per_minute: int = field(default=10, metadata=_check(_positive))  # ... then this many a minute
    read_timeout_seconds: float = field(default=30.0, metadata=_check(_positive_float))  # a silent client is cut
    webhook_allowed_hosts: tuple[str, ...] = field(default=(), metadata=_check(_allowed_hosts))
    webhook_timeout_seconds: float = field(default=10.0, metadata=_check(_positive_float))
    webhook_retry_seconds: float = field(default=30.0, metadata=_check(_positive_float))
    webhook_retry_max_seconds: float = field(default=3600.0, metadata=_check(_positive_float))
    webhook_give_up_seconds: float = field(default=172800.0, metadata=_check(_positive_float))

    @property
    def webhooks(self) -> bool:
        """Whether webhooks can fire: the API is served and some host is allowed (else none is queued or sent)."""
        return self.enabled and bool(self.webhook_allowed_hosts)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``config.toml`` says, with defaults for what it does not."""

    path: Path = Path("config.toml")
    workspace: WorkspaceSettings = WorkspaceSettings()
    intake: IntakeSettings = IntakeSettings()
    limits: LimitsSettings = LimitsSettings()
    senders: tuple[SenderSettings, ...] = ()
    routing: RoutingSettings = RoutingSettings()
    validation: ValidationSettings = ValidationSettings()
    watch: WatchSettings = WatchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    retention: RetentionSettings = RetentionSettings()
    report: ReportSettings = ReportSettings()
    logging: LoggingSettings = LoggingSettings()
    console: ConsoleSettings = ConsoleSettings()
    notifications: NotificationSettings = NotificationSettings()
    api: ApiSettings = ApiSettings()

    @property
    def digest_timezone(self) -> str:
        """The time zone whose days the notification digests cover: ``notifications.timezone``, else the
        schedule's."""
        return self.notifications.timezone or self.schedule.timezone

    def sender(self, sender_id: str) -> SenderSettings | None:
        """The declared sender with this id, if any."""
        return next((s for s in self.senders if s.id == sender_id), None)

    @property
    def business_rules(self) -> bool:
        """Whether any flow may run business rules (a layer beyond the XSD, for all senders or for one)."""
        layers = {*self.validation.rules, *(r for s in self.senders for r in s.rules or ())}
        return bool(layers - {Layer.XSD.value})


def load_settings(path: Path) -> Settings:
    """Read and check ``path``; relative paths in it are taken from its folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (set --config or EDI_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(data, path)


def settings_from_dict(data: Mapping[str, Any], path: Path) -> Settings:
    """Build settings from parsed TOML, as if read from ``path``."""
    base = path.parent.resolve()
    try:
        settings = _build(Settings, data, "", base)
    except _BadKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    settings = replace(settings, path=path.resolve())
    ids = [s.id for s in settings.senders]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{path}: senders: id {duplicates[0]!r} is declared twice")
    return settings


class _BadKey(Exception):
    """A problem with one key, to be prefixed with the file name."""


T = TypeVar("T")


def _build(cls: type[T], data: Mapping[str, Any], where: str, base: Path) -> T:
    if not isinstance(data, Mapping):
        raise _BadKey(f"{where or 'top level'}: expected a table, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if not (cls is Settings and f.name == "path")}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise _BadKey(f"unknown key '{_join(where, key)}'")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise _BadKey(f"'{_join(where, name)}' is required")
            if isinstance(f.default, Path) and not f.default.is_absolute():  # defaults are relative to the file too
                values[name] = base / f.default
            elif is_dataclass(hints[name]):  # an absent table: its defaults, resolved the same way
                values[name] = _build(hints[name], {}, _join(where, name), base)
            continue
        key = _join(where, name)
        value = _convert(hints[name], data[name], key, base)
        check = f.metadata.get("check")
        if check is not None:
            try:
                value = check(value)
            except ValueError as exc:
                raise _BadKey(f"'{key}': {exc}") from None
        values[name] = value
    try:
        return cls(**values)
    except ValueError as exc:
        raise _BadKey(f"{where or 'top level'}: {exc}") from None


def _convert(hint: Any, value: Any, key: str, base: Path) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = next(a for a in args if a is not type(None))
        if value == "" and inner is Path:
            return None
        return _convert(inner, value, key, base)
    if origin is tuple:
        if not isinstance(value, list):
            raise _BadKey(f"'{key}': expected a list, got {_show(value)}")
        return tuple(_convert(args[0], v, f"{key}[{i}]", base) for i, v in enumerate(value))
    if is_dataclass(hint):
        return _build(hint, value, key, base)  # type: ignore[arg-type]
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise _BadKey(f"'{key}': expected a path, got {_show(value)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadKey(f"'{key}': expected a number, got {_show(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadKey(f"'{key}': expected an integer, got {_show(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _BadKey(f"'{key}': expected true or false, got {_show(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise _BadKey(f"'{key}': expected a string, got {_show(value)}")
        return value
    raise TypeError(f"config: no conversion for {hint!r}")  # a programming error, not a user one


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
