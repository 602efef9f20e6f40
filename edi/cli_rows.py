"""How the CLI's list commands print what they found: one JSON object per line (``--json``), or an operator's table.

Writes to standard output (click); reads and raises nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click


def echo_rows(rows: list[dict[str, Any]], as_json: bool, render: Callable[[list[dict[str, Any]]], str]) -> None:
    """Print ``rows`` as JSON lines (nothing at all for none), or as the table ``render`` makes of them."""
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    click.echo(render(rows))
