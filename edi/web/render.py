"""The three renderings of a page's data (HTML through Jinja2 with autoescape, JSON, streamed CSV) and file
downloads with a safe name. Reads the package's templates; writes nothing; raises nothing of its own.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import markupsafe
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from edi.text import printable

TEMPLATES = Path(__file__).parent / "templates"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _finalize(value: Any) -> Any:
    """Every value a template prints: None as nothing, text with its controls shown (autoescape does the HTML); a
    macro's output (Markup, already made of finalized values) as it is, not escaped a second time."""
    if value is None:
        return ""
    if isinstance(value, markupsafe.Markup):
        return value
    return printable(value) if isinstance(value, str) else value


def environment() -> jinja2.Environment:
    """The console's Jinja2 environment: autoescape on for every template, controls made visible."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["query"] = lambda params, **more: urlencode({**params, **more})
    return env


def html(env: jinja2.Environment, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """A page."""
    return HTMLResponse(env.get_template(template).render(**context), status_code=status)


def as_json(data: Any, status: int = 200) -> JSONResponse:
    """A JSON twin (exact values: no escaping beyond JSON's own)."""
    return JSONResponse(data, status_code=status)


def csv_stream(columns: Sequence[str], rows: Iterable[dict[str, Any]], filename: str) -> StreamingResponse:
    """A CSV twin, written row by row as the rows are read (memory does not grow with the export)."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for n, row in enumerate(rows, start=1):
            writer.writerow([_cell(row.get(c)) for c in columns])
            if n % 200 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": attachment(filename)}
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value)
    # a spreadsheet would run a cell starting with = + - @ as a formula (CSV injection): make it text
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def safe_filename(name: str, fallback: str = "download") -> str:
    """A file name a browser saves as given: no folders, no controls, no quotes; ASCII letters kept."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_NAME.sub("_", ascii_name).strip("._")[:150]
    return cleaned or fallback


def attachment(name: str) -> str:
    """A Content-Disposition header that saves the download under a safe name (RFC 6266, with the UTF-8 form)."""
    safe = safe_filename(name)
    readable = "".join(c for c in name.replace("\\", "/").rsplit("/", 1)[-1] if c.isprintable() and c not in '"')
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(readable[:150] or safe, safe='')}"


def download(path: Path, name: str, media_type: str) -> FileResponse:
    """A file sent as an attachment."""
    return FileResponse(path, media_type=media_type, headers={"Content-Disposition": attachment(name)})


def file_json(path: Path) -> Response:
    """A JSON file as it is on disk (an acknowledgement: the exact bytes edi wrote)."""
    return Response(path.read_bytes(), media_type="application/json")
