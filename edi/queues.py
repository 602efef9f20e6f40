"""The queues a configuration routes to, and the check that its routing rules name no other.

A queue is known when a recipient of the directory is named after it (where a document no rule matches goes), when
``routing.queues`` declares it, or when ``routing.unknown_recipient`` names it. A rule naming any other queue is a
typo that would send invoices to a folder nobody reads while the sender is told ``IN_INTEGRE``: it is refused.
Reads the recipient directory the settings name (:func:`edi.route.directory.load_directory`; again only when its
file changed since this process last read it); writes nothing; raises :class:`ConfigError` naming the rule and
the known queues (:class:`DirectoryError` for the directory itself).
"""

from __future__ import annotations

from pathlib import Path

from edi.config import REJECT, RoutingRule, Settings
from edi.errors import ConfigError
from edi.route.directory import Directory, load_directory


def known_queues(settings: Settings, directory: Directory) -> list[str]:
    """Every queue a document can be delivered to, sorted."""
    names = [r.id for r in directory.recipients] + list(settings.routing.queues)
    if settings.routing.unknown_recipient != REJECT:
        names.append(settings.routing.unknown_recipient)
    return sorted(set(names))


def check_routing(settings: Settings, directory: Directory) -> None:
    """Raise :class:`ConfigError` for the first routing rule whose queue is not known."""
    known = known_queues(settings, directory)
    for position, rule in enumerate(settings.routing.rules):
        if rule.queue not in known:
            raise ConfigError(
                f"{settings.path}: routing.rules[{position}] ({_fields(rule)}): unknown queue {rule.queue!r}; "
                f"known queues: {', '.join(known) or 'none'} (the directory's recipient ids, routing.queues and "
                "routing.unknown_recipient): declare a queue no recipient is named after in routing.queues"
            )


def load_routing(settings: Settings) -> Directory:
    """The recipient directory of ``settings``, once every routing rule is checked to name a known queue."""
    directory = _read(settings.routing.directory)
    check_routing(settings, directory)
    return directory


_last: tuple[tuple[object, ...], Directory] | None = None  # the directory last read in this process, and its file's


def _read(path: Path | None) -> Directory:
    """The directory at ``path``, read again only if its file changed since it was last read in this process: the
    command line checks the configuration, then a batch's session reads the directory (100,000 recipients from a
    CSV file take 1.6 s to read)."""
    global _last
    try:
        st = None if path is None else path.stat()
    except OSError:
        return load_directory(path)  # which says why it cannot be read
    key = (path,) if st is None else (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if _last is not None and _last[0] == key:
        return _last[1]
    directory = load_directory(path)
    _last = (key, directory)
    return directory


def _fields(rule: RoutingRule) -> str:
    shown = {"recipient": rule.recipient, "service": rule.service, "sender": rule.sender, "queue": rule.queue}
    return ", ".join(f'{key} = "{value}"' for key, value in shown.items() if value is not None)
