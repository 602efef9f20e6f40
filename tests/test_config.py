"""Settings (edi/config.py): the shipped file, defaults, relative paths and every kind of mistake, named."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from edi.config import (
    IntakeSettings,
    JobSettings,
    LimitsSettings,
    LoggingSettings,
    NotificationSettings,
    RoutingRule,
    SenderSettings,
    Settings,
    ValidationSettings,
    load_settings,
    settings_from_dict,
)
from edi.errors import ConfigError
from edi.queues import known_queues, load_routing
from tests.conftest import REPO

MINIMAL = """
[workspace]
root = "var"

[intake]
min_age_seconds = 2

[[senders]]
id = "acme"
sellers = ["123456782"]

[routing]
unknown_recipient = "reject"

[validation]
rules = ["xsd"]
"""


def write(folder: Path, text: str, name: str = "config.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(folder: Path, text: str) -> Settings:
    return load_settings(write(folder, text))


def error(folder: Path, text: str) -> str:
    """The one-line message of the ConfigError that loading ``text`` raises."""
    path = write(folder, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_repository_config_loads() -> None:
    """The shipped config.toml loads, with its two senders, the sample directory, its rule and the queue it declares
    for it."""
    settings = load_settings(REPO / "config.toml")
    assert settings.path == (REPO / "config.toml").resolve()
    assert settings.workspace.root == REPO / "var"
    assert settings.intake.min_age_seconds == 2.0 and settings.limits.max_flow_bytes == 104857600
    assert [s.id for s in settings.senders] == ["acme", "opdemat", "exemple-pa"]
    assert settings.sender("acme") == SenderSettings(
        "acme", ("123456782",), "Acme SAS", email=("factures@acme.example",)
    )
    assert settings.sender("opdemat") is not None and settings.sender("opdemat").any_seller  # type: ignore[union-attr]
    assert settings.sender("nobody") is None
    assert settings.routing.directory == REPO / "flows" / "directory.toml"
    assert settings.routing.directory.is_file()
    assert settings.routing.rules == (
        RoutingRule(queue="ville-exemple-voirie", recipient="ville-exemple", service="VOIRIE"),
    )
    assert settings.routing.queues == ("ville-exemple-voirie",)
    assert known_queues(settings, load_routing(settings)) == [
        "ch-exemple",
        "dupont",
        "ville-exemple",
        "ville-exemple-voirie",
    ]
    assert settings.validation.rules == ("xsd", "en16931") and settings.logging.level == "warning"
    assert settings.sender("opdemat").grace == ("br-fr",)  # type: ignore[union-attr]


def test_repository_config_documents_its_defaults() -> None:
    """Every default the shipped file states is the default the code applies (ignoring the file's choices)."""
    defaults = Settings()
    assert defaults.intake == IntakeSettings(min_age_seconds=2.0)
    assert defaults.intake.ignore == ("*.tmp", "*.part", "*.filepart", "*.crdownload", "~*")
    assert defaults.limits == LimitsSettings(
        max_flow_bytes=100 * 1024 * 1024,
        max_document_bytes=20 * 1024 * 1024,
        max_uncompressed_bytes=1024**3,
        max_compression_ratio=200.0,
        max_members=1000,
        pdf_seconds=20.0,
        validate_seconds=30.0,
    )
    assert defaults.routing.unknown_recipient == "reject" and defaults.routing.directory is None
    assert defaults.routing.rules == () and defaults.routing.queues == () and defaults.senders == ()
    assert defaults.validation == ValidationSettings(("xsd",)) and defaults.logging == LoggingSettings("warning")


def test_empty_file_gives_all_defaults(tmp_path: Path) -> None:
    """An empty file is valid: no senders, no directory, reject unknown recipients, XSD validation."""
    settings = load(tmp_path, "")
    assert settings.path == (tmp_path / "config.toml").resolve()
    assert settings.intake == IntakeSettings()
    assert settings.senders == () and settings.routing.directory is None and settings.routing.rules == ()
    assert settings.routing.unknown_recipient == "reject"
    assert settings.validation.rules == ("xsd",) and settings.logging.level == "warning"


def test_default_workspace_root_is_beside_the_config_file(tmp_path: Path) -> None:
    """With no [workspace] table, the root is "var" taken from the config file's folder, like an explicit "var"."""
    explicit = load_settings(write(tmp_path, '[workspace]\nroot = "var"\n', "explicit.toml"))
    default = load_settings(write(tmp_path, "", "default.toml"))
    assert explicit.workspace.root == tmp_path.resolve() / "var"
    assert default.workspace.root == explicit.workspace.root


def test_minimal_file_means_what_it_says(tmp_path: Path) -> None:
    """The issue's minimal file: root var beside the file, 2 s min age, acme for one SIREN, reject, XSD only."""
    settings = load(tmp_path, MINIMAL)
    assert settings.workspace.root == tmp_path.resolve() / "var"
    assert settings.intake.min_age_seconds == 2.0 and isinstance(settings.intake.min_age_seconds, float)
    assert settings.senders == (SenderSettings(id="acme", sellers=("123456782",)),)
    assert not settings.senders[0].any_seller
    assert settings.routing.unknown_recipient == "reject" and settings.routing.directory is None
    assert settings.validation.rules == ("xsd",)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative root and directory are taken from the file's folder, not the current directory; absolute stay."""
    folder = tmp_path / "etc" / "edi"
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        write(folder, f'[workspace]\nroot = "../data"\n[routing]\ndirectory = "{tmp_path / "dir.csv"}"\n')
    )
    assert settings.workspace.root == folder.resolve() / ".." / "data"
    assert settings.routing.directory == tmp_path / "dir.csv"
    relative = load_settings(Path("etc/edi/config.toml"))
    assert relative.workspace.root.is_absolute() and relative.path == (folder / "config.toml").resolve()


def test_home_relative_path_and_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'~' expands to the home folder; directory = "" means no directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = load(tmp_path, '[workspace]\nroot = "~/edi"\n[routing]\ndirectory = ""\n')
    assert settings.workspace.root == tmp_path / "home" / "edi"
    assert settings.routing.directory is None


def test_rules_senders_and_any_seller(tmp_path: Path) -> None:
    """Rules keep their order and optional fields; a '*' sender may deposit for any seller."""
    settings = load(
        tmp_path,
        """
        [[senders]]
        id = "opdemat"
        name = "OpDémat"
        sellers = ["*"]

        [[senders]]
        id = "acme.2"
        sellers = ["123456782", "FR40123456782", "12345678200010"]

        [routing]
        unknown_recipient = "unrouted"

        [[routing.rules]]
        queue = "all-voirie"
        service = "VOIRIE"

        [[routing.rules]]
        queue = "from-opdemat"
        recipient = "dupont"
        sender = "opdemat"
        """,
    )
    assert settings.sender("opdemat") == SenderSettings("opdemat", ("*",), "OpDémat")
    assert settings.senders[0].any_seller and not settings.senders[1].any_seller
    assert settings.routing.unknown_recipient == "unrouted"
    assert settings.routing.rules == (
        RoutingRule(queue="all-voirie", recipient="*", service="VOIRIE"),
        RoutingRule(queue="from-opdemat", recipient="dupont", sender="opdemat"),
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 1\n", "unknown key 'colour'"),
        ("[workspace]\nroot = 'var'\nname = 'x'\n", "unknown key 'workspace.name'"),
        ("[intake]\nmin_age = 2\n", "unknown key 'intake.min_age'"),
        ("[[senders]]\nid = 'a'\nsellers = ['*']\nsiren = '1'\n", "unknown key 'senders[0].siren'"),
        ("[[senders]]\nid = 'a'\nsellers = ['*']\n[[senders]]\nid = 'b'\nsellers = ['*']\nx = 1\n", "'senders[1].x'"),
        ("[routing]\ndefault = 'q'\n", "unknown key 'routing.default'"),
        ("[[routing.rules]]\nqueue = 'q'\nbuyer = 'x'\n", "unknown key 'routing.rules[0].buyer'"),
        ("[validation]\nschematron = true\n", "unknown key 'validation.schematron'"),
        ("[logging]\nformat = 'json'\n", "unknown key 'logging.format'"),
    ],
    ids=["top", "workspace", "intake", "sender", "second-sender", "routing", "rule", "validation", "logging"],
)
def test_unknown_keys_at_every_level(tmp_path: Path, text: str, key: str) -> None:
    """An unknown key anywhere is a one-line ConfigError naming it with its full path."""
    assert key in error(tmp_path, text)


def test_top_level_path_key_is_unknown(tmp_path: Path) -> None:
    """'path' is not a configuration key (it is where the file was read): writing it is an unknown-key error."""
    assert "unknown key 'path'" in error(tmp_path, 'path = "/elsewhere/config.toml"\n')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workspace = 'var'\n", "workspace: expected a table, got 'var'"),
        ("[workspace]\nroot = 3\n", "'workspace.root': expected a path, got 3"),
        ("[intake]\nmin_age_seconds = '2'\n", "'intake.min_age_seconds': expected a number, got '2'"),
        ("[intake]\nmin_age_seconds = true\n", "'intake.min_age_seconds': expected a number, got True"),
        ("[limits]\nmax_flow_bytes = 1.5\n", "'limits.max_flow_bytes': expected an integer, got 1.5"),
        ("[intake]\nignore = '*.tmp'\n", "'intake.ignore': expected a list, got '*.tmp'"),
        ("[intake]\nignore = ['*.tmp', 3]\n", "'intake.ignore[1]': expected a string, got 3"),
        ("senders = {id = 'a'}\n", "'senders': expected a list"),
        ("senders = ['acme']\n", "senders[0]: expected a table, got 'acme'"),
        ("[[senders]]\nid = 'a'\nsellers = '123456782'\n", "'senders[0].sellers': expected a list"),
        ("[[senders]]\nid = 'a'\nsellers = [123456782]\n", "'senders[0].sellers[0]': expected a string"),
        ("[[senders]]\nid = 'a'\nsellers = ['*']\nname = 1\n", "'senders[0].name': expected a string, got 1"),
        ("[routing]\ndirectory = true\n", "'routing.directory': expected a path, got True"),
        ("[routing]\nrules = {queue = 'q'}\n", "'routing.rules': expected a list"),
        ("[validation]\nrules = 'xsd'\n", "'validation.rules': expected a list, got 'xsd'"),
        ("[logging]\nlevel = 10\n", "'logging.level': expected a string, got 10"),
    ],
    ids=lambda v: v.split("\n")[-2] if "\n" in v else v,
)
def test_wrong_types(tmp_path: Path, text: str, message: str) -> None:
    """A value of the wrong type is a one-line ConfigError naming the key, the expected type and the value."""
    assert message in error(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[intake]\nmin_age_seconds = -1\n", "'intake.min_age_seconds': -1.0 must be a finite number, not negative"),
        ("[limits]\nmax_flow_bytes = 0\n", "'limits.max_flow_bytes': 0 must be positive"),
        ("[limits]\nvalidate_seconds = -5\n", "'limits.validate_seconds': -5.0 must be a finite number, not negative"),
        ("[limits]\nvalidate_seconds = inf\n", "'limits.validate_seconds': inf must be a finite number, not negative"),
        ("[[senders]]\nid = '../x'\nsellers = ['*']\n", "'senders[0].id': '../x' is not a safe folder name"),
        ("[[senders]]\nid = ''\nsellers = ['*']\n", "'senders[0].id': '' is not a safe folder name"),
        ("[[senders]]\nid = 'a b'\nsellers = ['*']\n", "'senders[0].id'"),
        ("[[senders]]\nid = '" + "a" * 65 + "'\nsellers = ['*']\n", "'senders[0].id'"),
        ("[[senders]]\nsellers = ['*']\n", "'senders[0].id' is required"),
        ("[[senders]]\nid = 'a'\n", "senders[0]: sellers: list the SIREN"),
        ("[[senders]]\nid = 'a'\nsellers = []\n", "senders[0]: sellers: list the SIREN"),
        ("[[senders]]\nid = 'a'\nsellers = ['*', '123456782']\n", 'senders[0]: sellers: "*" means any seller'),
        (
            "[[senders]]\nid = 'acme'\nsellers = ['*']\n[[senders]]\nid = 'acme'\nsellers = ['1']\n",
            "senders: id 'acme' is declared twice",
        ),
        ("[routing]\nunknown_recipient = 'no queue'\n", "'routing.unknown_recipient'"),
        ("[[routing.rules]]\nrecipient = 'x'\n", "'routing.rules[0].queue' is required"),
        ("[[routing.rules]]\nqueue = '../q'\n", "'routing.rules[0].queue': '../q' is not a safe folder name"),
        ("[validation]\nrules = ['xsd', 'schematron']\n", "validation: rules: unknown rule set 'schematron'"),
        ("[logging]\nlevel = 'verbose'\n", "logging: level: 'verbose' is not one of debug, info, warning, error"),
        ("[logging]\nlevel = 'INFO'\n", "logging: level: 'INFO'"),
    ],
    ids=[
        "negative-min-age",
        "zero-max-bytes",
        "negative-validate-seconds",
        "infinite-validate-seconds",
        "sender-id-traversal",
        "sender-id-empty",
        "sender-id-space",
        "sender-id-too-long",
        "sender-id-missing",
        "sellers-missing",
        "sellers-empty",
        "star-mixed-with-ids",
        "duplicate-sender",
        "unknown-recipient-queue-unsafe",
        "rule-without-queue",
        "rule-queue-unsafe",
        "unknown-rule-set",
        "bad-log-level",
        "log-level-case",
    ],
)
def test_bad_values(tmp_path: Path, text: str, message: str) -> None:
    """A value out of range or inconsistent is a one-line ConfigError naming the key."""
    assert message in error(tmp_path, text)


SCHEDULE = "[schedule]\ntimezone = {zone!r}\n[[schedule.jobs]]\njob = 'report'\nname = 'morning'\ncron = {cron!r}\n"


@pytest.mark.parametrize(
    ("zone", "cron", "message"),
    [
        ("Mars/Olympus_Mons", "0 6 * * *", "'schedule.timezone': unknown time zone 'Mars/Olympus_Mons'"),
        ("Europe/Pariss", "0 6 * * *", "'schedule.timezone': unknown time zone 'Europe/Pariss'"),
        ("Europe", "0 6 * * *", "'schedule.timezone': unknown time zone 'Europe'"),
        ("../../etc/passwd", "0 6 * * *", "'schedule.timezone': unknown time zone '../../etc/passwd'"),
        ("", "0 6 * * *", "'schedule.timezone': unknown time zone ''"),
        ("UTC", "0 25 * * *", "schedule.jobs[0]: job 'morning': cron '0 25 * * *': hour 25 is not between 0 and 23"),
        ("UTC", "61 * * * *", "job 'morning': cron '61 * * * *': minute 61 is not between 0 and 59"),
        ("UTC", "0 6 32 * *", "job 'morning': cron '0 6 32 * *': day of month 32 is not between 1 and 31"),
        ("UTC", "0 6 * 13 *", "job 'morning': cron '0 6 * 13 *': month 13 is not between 1 and 12"),
        ("UTC", "x 6 * * *", "job 'morning': cron 'x 6 * * *': minute 'x' is not a number 0-59"),
        ("UTC", "0 6 * * *  *", "job 'morning': cron '0 6 * * *  *': needs 5 fields"),
        ("UTC", "0 0 30 2 *", "job 'morning': cron '0 0 30 2 *': never runs"),
    ],
    ids=[
        "unknown-zone",
        "misspelt-zone",
        "zone-folder",
        "zone-path",
        "zone-empty",
        "hour",
        "minute",
        "day",
        "month",
        "not-a-number",
        "six-fields",
        "never-runs",
    ],
)
def test_schedule_mistakes_are_refused_when_read(tmp_path: Path, zone: str, cron: str, message: str) -> None:
    """A time zone the system does not know or a cron line a crontab would refuse is a ConfigError naming the key
    when the configuration is read (so by every command, not only `edi schedule`)."""
    assert message in error(tmp_path, SCHEDULE.format(zone=zone, cron=cron))


def test_schedule_as_a_crontab_writes_it_loads(tmp_path: Path) -> None:
    """Names, ranges, steps, lists and weekday 7 are read, in any IANA zone."""
    settings = load(tmp_path, SCHEDULE.format(zone="America/New_York", cron="*/15 8-17/2 1,15 jan-MAR mon-fri,7"))
    assert settings.schedule.timezone == "America/New_York"
    assert settings.schedule.jobs[0].cron == "*/15 8-17/2 1,15 jan-MAR mon-fri,7"


def test_min_age_not_a_number_is_refused(tmp_path: Path) -> None:
    """min_age_seconds = nan would make every file forever too young: it is a ConfigError naming the key."""
    assert "'intake.min_age_seconds'" in error(tmp_path, "[intake]\nmin_age_seconds = nan\n")


def test_missing_file(tmp_path: Path) -> None:
    """A configuration file that does not exist is a ConfigError naming it and how to point at another."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="no such configuration file") as raised:
        load_settings(path)
    assert str(raised.value).startswith(f"{path}: ") and "EDI_CONFIG" in str(raised.value)


def test_invalid_toml(tmp_path: Path) -> None:
    """A TOML syntax error is a one-line ConfigError naming the file and where."""
    message = error(tmp_path, "[intake\nmin_age_seconds = 2\n")
    assert "not valid TOML" in message and "line 1" in message


def test_unreadable_file(tmp_path: Path) -> None:
    """A folder or a non-UTF-8 file as configuration is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path)
    latin = tmp_path / "latin.toml"
    latin.write_bytes("[[senders]]\nid = 'a'\nname = 'Soci\xe9t\xe9'\nsellers = ['*']\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot read") as raised:
        load_settings(latin)
    assert str(latin) in str(raised.value)


def test_settings_are_frozen(tmp_path: Path) -> None:
    """Settings cannot be changed once loaded."""
    settings = load(tmp_path, MINIMAL)
    with pytest.raises(AttributeError):
        settings.intake.min_age_seconds = 0  # type: ignore[misc]


def test_metrics_token_is_optional_and_must_be_long(tmp_path: Path) -> None:
    """``[console] metrics_token``: absent or "" means none (only an operator's session reads /metrics); a token
    shorter than 16 characters, or with spaces around it, is refused by name."""
    assert load(tmp_path, "").console.metrics_token is None
    assert load(tmp_path, '[console]\nmetrics_token = ""\n').console.metrics_token is None
    assert load(tmp_path, '[console]\nmetrics_token = "0123456789abcdefXYZ"\n').console.metrics_token == (
        "0123456789abcdefXYZ"
    )
    for bad in ('"short"', '" 0123456789abcdefXYZ"', "42"):
        with pytest.raises(ConfigError, match=r"console\.metrics_token"):
            load(tmp_path, f"[console]\nmetrics_token = {bad}\n")


def test_a_partner_that_only_returns_statuses_lists_its_recipients_and_no_sellers(tmp_path: Path) -> None:
    """`sellers = []` is allowed only beside `recipients`; addresses in `email` are bare, one line each."""
    ok = {"senders": [{"id": "ville-pa", "sellers": [], "recipients": ["ville-exemple"], "email": ["ops@ville.fr"]}]}
    sender = settings_from_dict(ok, tmp_path / "c.toml").senders[0]
    assert sender.recipients == ("ville-exemple",) and sender.email == ("ops@ville.fr",) and sender.sellers == ()
    with pytest.raises(ConfigError, match="sellers"):
        settings_from_dict({"senders": [{"id": "x", "sellers": []}]}, tmp_path / "c.toml")
    for bad in ["a b@c.fr", "x@y", "Name <a@b.fr>", "a@b.fr\nBcc: x@y.fr", "a@b.fr\n"]:
        with pytest.raises(ConfigError, match="plain e-mail address"):
            settings_from_dict({"senders": [{"id": "x", "sellers": ["*"], "email": [bad]}]}, tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="safe folder name"):
        settings_from_dict({"senders": [{"id": "acme\n", "sellers": ["*"]}]}, tmp_path / "c.toml")


def test_waiting_days_is_a_positive_number_of_days(tmp_path: Path) -> None:
    """``[console] waiting_days``: 7 by default, a fraction allowed; zero, a negative number or text is refused by
    name."""
    assert load(tmp_path, "").console.waiting_days == 7
    assert load(tmp_path, "[console]\nwaiting_days = 2.5\n").console.waiting_days == 2.5
    for bad in ("0", "-1", '"7"'):
        with pytest.raises(ConfigError, match=r"console\.waiting_days"):
            load(tmp_path, f"[console]\nwaiting_days = {bad}\n")


def test_notifications_are_off_by_default_and_need_a_from_address(tmp_path: Path) -> None:
    """No [notifications] (or no smtp_host): off; with a host, from_address is required; the port follows the
    security unless set; the password is never shown in the settings' repr."""
    assert not Settings().notifications.enabled
    assert Settings().notifications.immediate == ("213", "501", "210")
    with pytest.raises(ConfigError, match="from_address"):
        settings_from_dict({"notifications": {"smtp_host": "mail.example"}}, tmp_path / "c.toml")
    given = {"smtp_host": "mail.example", "from_address": "edi@p.example", "username": "u", "password": "s3cret!"}
    settings = settings_from_dict({"notifications": given}, tmp_path / "c.toml")
    assert settings.notifications.enabled and settings.notifications.port == 587
    assert "s3cret!" not in repr(settings)
    tls = settings_from_dict({"notifications": given | {"security": "tls"}}, tmp_path / "c.toml")
    assert tls.notifications.port == 465
    assert settings.digest_timezone == "UTC"
    paris = settings_from_dict({"notifications": given | {"timezone": "Europe/Paris"}}, tmp_path / "c.toml")
    assert paris.digest_timezone == "Europe/Paris"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"smtp_host": "mail.example\r\nX: y", "from_address": "e@p.example"}, "is not a host name"),
        ({"smtp_host": "h", "from_address": "Edi <e@p.example>"}, "plain e-mail address"),
        ({"smtp_host": "h", "from_address": "e@p.example", "security": "ssl"}, "is not one of none, starttls, tls"),
        ({"smtp_host": "h", "from_address": "e@p.example", "username": "u"}, "give both, or neither"),
        (
            {"smtp_host": "h", "from_address": "e@p.example", "security": "none", "username": "u", "password": "p"},
            "never sent in clear",
        ),
        ({"immediate": ["213", "999"]}, "'999' is not a status"),
        ({"smtp_port": 0}, "must be a TCP port"),
        ({"retry_seconds": 0}, "must be a positive number"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"smtp_server": "h"}, "unknown key 'notifications.smtp_server'"),
    ],
    ids=[
        "host-with-line-break",
        "from-with-name",
        "security",
        "user-without-password",
        "login-in-clear",
        "immediate-status",
        "port",
        "retry",
        "zone",
        "unknown-key",
    ],
)
def test_notification_mistakes_are_named(tmp_path: Path, table: dict[str, object], message: str) -> None:
    """Each mistake in [notifications] is a one-line ConfigError naming the key."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings_from_dict({"notifications": table}, tmp_path / "c.toml")


def test_the_notification_jobs_are_known() -> None:
    """`notify` and `digest` are jobs [[schedule.jobs]] may name."""
    assert JobSettings(job="digest", cron="0 7 * * *").label == "digest"
    assert JobSettings(job="notify", every_seconds=60).label == "notify"


def test_the_shipped_file_documents_the_notification_defaults() -> None:
    """The shipped [notifications] is off and states the defaults the code applies (its from_address aside); its
    digest job is known."""
    shipped = load_settings(REPO / "config.toml")
    assert not shipped.notifications.enabled
    assert shipped.notifications == NotificationSettings(from_address="edi@platform.example")
    assert [j.job for j in shipped.schedule.jobs][-1] == "digest"
