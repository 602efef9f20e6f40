"""edi.queues: the queues a configuration knows, and routing rules refused when they name another (a typo)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edi.config import load_settings
from edi.errors import ConfigError, DirectoryError
from edi.queues import known_queues, load_routing
from tests.conftest import FLOWS

SAMPLE_IDS = ["ch-exemple", "dupont", "ville-exemple"]  # the recipients of flows/directory.toml


def settings_for(tmp_path: Path, routing: str, directory: Path | None = FLOWS / "directory.toml"):
    """Settings with this [routing] table body (and the sample directory, unless told otherwise)."""
    config = tmp_path / "config.toml"
    head = f'directory = "{directory}"\n' if directory else ""
    config.write_text(f"[routing]\n{head}{routing}", encoding="utf-8")
    return load_settings(config)


def test_known_queues_are_recipients_declared_queues_and_the_unknown_recipient_queue(tmp_path: Path) -> None:
    """Known queues: the directory's recipient ids, routing.queues and routing.unknown_recipient, sorted, once each."""
    settings = settings_for(tmp_path, 'unknown_recipient = "unrouted"\nqueues = ["voirie", "dupont"]\n')
    assert known_queues(settings, load_routing(settings)) == [
        "ch-exemple",
        "dupont",
        "unrouted",
        "ville-exemple",
        "voirie",
    ]
    plain = settings_for(tmp_path, "")
    assert known_queues(plain, load_routing(plain)) == SAMPLE_IDS  # "reject" is no queue


@pytest.mark.parametrize(
    "queue", ["ville-exemple", "voirie", "unrouted"], ids=["a-recipient", "declared", "unknown-recipient-queue"]
)
def test_a_rule_may_name_any_known_queue(tmp_path: Path, queue: str) -> None:
    """A rule naming a recipient's queue, a declared queue or the unknown-recipient queue is accepted."""
    settings = settings_for(
        tmp_path,
        f'unknown_recipient = "unrouted"\nqueues = ["voirie"]\n[[routing.rules]]\nrecipient = "*"\nqueue = "{queue}"\n',
    )
    assert [r.id for r in load_routing(settings).recipients] == ["ville-exemple", "ch-exemple", "dupont"]


def test_a_rule_naming_an_unknown_queue_is_refused_naming_the_rule_and_the_known_queues(tmp_path: Path) -> None:
    """A typo in a rule's queue is a ConfigError naming the file, the rule (position, fields) and the known queues."""
    settings = settings_for(
        tmp_path,
        'queues = ["ville-exemple-voirie"]\n'
        '[[routing.rules]]\nrecipient = "dupont"\nsender = "opdemat"\nqueue = "dupont"\n'
        '[[routing.rules]]\nrecipient = "ville-exemple"\nservice = "VOIRIE"\nqueue = "ville-exemple-voirei"\n',
    )
    with pytest.raises(ConfigError) as raised:
        load_routing(settings)
    assert str(raised.value) == (
        f'{settings.path}: routing.rules[1] (recipient = "ville-exemple", service = "VOIRIE", '
        "queue = \"ville-exemple-voirei\"): unknown queue 'ville-exemple-voirei'; known queues: ch-exemple, dupont, "
        "ville-exemple, ville-exemple-voirie (the directory's recipient ids, routing.queues and "
        "routing.unknown_recipient): declare a queue no recipient is named after in routing.queues"
    )


def test_without_a_directory_only_declared_queues_are_known(tmp_path: Path) -> None:
    """With no directory, a rule may only name a declared queue (or the unknown-recipient queue)."""
    settings = settings_for(tmp_path, '[[routing.rules]]\nqueue = "dupont"\n', directory=None)
    with pytest.raises(ConfigError, match=re.escape("unknown queue 'dupont'; known queues: none (")):
        load_routing(settings)
    declared = settings_for(tmp_path, 'queues = ["dupont"]\n[[routing.rules]]\nqueue = "dupont"\n', directory=None)
    assert load_routing(declared).recipients == ()


def test_a_directory_that_cannot_be_read_is_a_directory_error(tmp_path: Path) -> None:
    """The directory itself is read and checked too: one that is missing is a DirectoryError (a ConfigError)."""
    settings = settings_for(tmp_path, "", directory=tmp_path / "absent.toml")
    with pytest.raises(DirectoryError, match="cannot read the recipient directory"):
        load_routing(settings)


def test_a_declared_queue_must_be_a_safe_folder_name(tmp_path: Path) -> None:
    """routing.queues names folders: each must be a safe name, said when the file is read."""
    with pytest.raises(ConfigError, match=re.escape("'routing.queues': '../q' is not a safe folder name")):
        settings_for(tmp_path, 'queues = ["../q"]\n')


def test_the_directory_is_read_again_only_when_its_file_changed(tmp_path: Path) -> None:
    """Checking the configuration, then starting a session, reads the directory once; a changed file is read again
    (a long-running edi watch or edi schedule sees what was added to it)."""
    path = tmp_path / "directory.toml"
    path.write_text('[[recipients]]\nid = "dupont"\nidentifiers = ["404040404"]\n', encoding="utf-8")
    settings = settings_for(tmp_path, "", directory=path)
    first = load_routing(settings)
    assert load_routing(settings) is first
    with path.open("a", encoding="utf-8") as more:
        more.write('[[recipients]]\nid = "ville"\nidentifiers = ["21930048000015"]\n')
    assert [r.id for r in load_routing(settings).recipients] == ["dupont", "ville"]
