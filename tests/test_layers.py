"""The layering docs/architecture.md states, checked on the source: what each package may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EDI = Path(__file__).resolve().parent.parent / "edi"


def imports(path: Path) -> set[str]:
    """The modules a file imports (absolute names; relative imports are not used in edi)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files(package: str) -> list[Path]:
    return sorted((EDI / package).rglob("*.py"))


@pytest.mark.parametrize("path", files("web"), ids=lambda p: p.name)
def test_the_web_layer_reads_through_browse_and_moves_nothing(path: Path) -> None:
    """edi.web never opens SQLite, never imports ingest / validate / route / spool / runner."""
    forbidden = ("sqlite3", "sqlite_utils", "edi.ingest", "edi.validate", "edi.route", "edi.spool", "edi.runner")
    found = sorted(n for n in imports(path) if n.startswith(forbidden))
    assert not found, f"{path.name} imports {found}"


@pytest.mark.parametrize("path", files("browse"), ids=lambda p: p.name)
def test_browse_is_below_the_web_layer(path: Path) -> None:
    """edi.browse (queries) imports neither the web layer nor the CLI, nor what moves files (the spool's names of
    things, its constants, are fine)."""
    forbidden = ("edi.web", "edi.cli", "edi.spool.Spool", "edi.runner", "edi.ingest", "edi.validate", "edi.route")
    found = sorted(n for n in imports(path) if n.startswith(forbidden))
    assert not found, f"{path.name} imports {found}"


def test_the_store_does_not_import_the_notifications() -> None:
    """edi.tracking holds the outbox table and a policy protocol; edi.notify (above it) imports it, never the reverse;
    and edi.notify imports no processing layer."""
    assert not [n for n in imports(EDI / "tracking.py") if n.startswith("edi.notify")]
    for path in files("notify"):
        forbidden = ("edi.ingest", "edi.validate", "edi.route", "edi.spool", "edi.runner", "edi.processor", "edi.cli")
        found = sorted(n for n in imports(path) if n.startswith(forbidden))
        assert not found, f"{path.name} imports {found}"


def test_the_store_does_not_import_the_api() -> None:
    """edi.tracking holds the webhooks' tables and a policy protocol; edi.api (above it) imports it, never the reverse;
    what processing loads of edi.api (the events' policy, and what delivers them) imports no web or processing layer."""
    assert not [n for n in imports(EDI / "tracking.py") if n.startswith("edi.api")]
    forbidden = ("edi.web", "edi.cli", "edi.runner", "edi.processor", "edi.ingest", "edi.validate", "edi.route")
    for name in ("events", "callbacks", "signing", "deliver"):
        found = sorted(n for n in imports(EDI / "api" / f"{name}.py") if n.startswith((*forbidden, "starlette")))
        assert not found, f"{name}.py imports {found}"
