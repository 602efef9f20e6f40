"""The Flow Service's reads: ``GET {base}/v1/flows/{flowId}`` (the Flow, or the file as deposited) and
``POST {base}/v1/flows/search``.

Every read is scoped to the sender of the client's token (:meth:`edi.api.app.Api.client`) in SQL: another sender's
id answers exactly as an unknown one (404 ``MISSING_RESOURCE``). ``docType=Original`` sends the bytes as they came,
from wherever they are now (the inbox while a deposit waits for its claim, the spool while it is processed, the
archive, ``failed/``, the requeued spool; a CDAR message from the sender's ``acks/`` folder); ``Converted`` and
``ReadableView`` answer 404: edi keeps neither (docs/api.md "Following a flow").

Reads the store (read-only) and those files; writes nothing; refuses with :class:`edi.api.errors.ApiError`.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from edi.api import flows
from edi.api.errors import INVALID_REQUEST, MISSING_REQUIRED_FIELD, MISSING_RESOURCE, ApiError
from edi.browse.flows import original_path, stored_name
from edi.web.render import attachment

if TYPE_CHECKING:  # edi.api.app imports this module for its routes
    from edi.api.app import Api

Endpoint = Callable[[Request], Awaitable[Response]]

DOC_TYPES = ("Metadata", "Original", "Converted", "ReadableView")
MAX_SEARCH_BYTES = 64 * 1024  # a search body is a few hundred bytes
CHUNK = 256 * 1024
NOT_FOUND = "no flow with this id"
MEDIA_TYPES = (  # what the first bytes say the file is
    (b"%PDF", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
)


def get_flow(api: Api) -> Endpoint:
    """``GET /v1/flows/{flowId}?docType=Metadata|Original|Converted|ReadableView``."""

    def call(request: Request) -> Response:
        client = api.client(request)
        flow_id = request.path_params["flowId"]
        doc_type = request.query_params.get("docType", "Metadata")
        if doc_type not in DOC_TYPES:
            raise ApiError(400, INVALID_REQUEST, f"docType is one of {', '.join(DOC_TYPES)}")
        if len(flow_id) > flows.MAX_ID:
            raise ApiError(400, INVALID_REQUEST, f"a flowId is at most {flows.MAX_ID} characters")
        if doc_type == "Metadata":
            with api.reader.reading():
                flow = flows.flow_json(api.reader.connection(), api.layout, client.sender, flow_id)
            if flow is None:
                raise ApiError(404, MISSING_RESOURCE, NOT_FOUND)
            return JSONResponse(flow)
        if doc_type != "Original":
            with api.reader.reading():
                known = flows.flow_json(api.reader.connection(), api.layout, client.sender, flow_id) is not None
            said = NOT_FOUND if not known else f"edi keeps no {doc_type} document of a flow: ask for Original"
            raise ApiError(404, MISSING_RESOURCE, said)
        return _original(api, client.sender, flow_id)

    async def endpoint(request: Request) -> Response:
        result: Response = await run_in_threadpool(call, request)
        return result

    return endpoint


def _original(api: Api, sender: str, flow_id: str) -> Response:
    """The flow's bytes as they came, streamed from an open descriptor (the file may move on meanwhile: what is
    open stays readable); looked up twice, since a flow moves from folder to folder as it is processed."""
    for _ in range(2):
        with api.reader.reading():
            conn = api.reader.connection()
            with flows._snapshot(conn):
                found = flows.locate(conn, sender, flow_id)
        if found is None:
            raise ApiError(404, MISSING_RESOURCE, NOT_FOUND)
        name, places = _places(api, found)
        for path in places:
            opened = _open_regular(path)
            if opened is not None:
                return _stream(opened, name)
    raise ApiError(404, MISSING_RESOURCE, "the flow's file is no longer kept (removed by retention)")


def _open_regular(path: Path) -> IO[bytes] | None:
    """``path`` opened for reading if it is a regular file; never through a symbolic link (a sender may put one in
    its inbox: it must not read the server's files through it), never a FIFO or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")  # closed by the stream


def _places(api: Api, found: flows.Found) -> tuple[str, list[Path]]:
    """The name to give the file, and where its bytes may be, likeliest first."""
    layout, row = api.layout, found.row
    if found.kind == "message":
        name = f"{row['message_id']}{flows.MESSAGE_SUFFIX}"
        return name, [layout.sender_acks(str(row["sender"])) / name]
    deposit = found.deposit
    inbox = [layout.sender_inbox(str(deposit["sender"])) / str(deposit["inbox_name"])] if deposit else []
    name = str(deposit["name"]) if deposit else str(row["file_name"])
    if found.kind == "deposit":
        return name, inbox
    kept = original_path(layout, row)
    places = [kept] if kept is not None else []
    if row["claimed_by"]:
        places.append(layout.active / str(row["claimed_by"]) / str(row["flow_id"]))
    places += _in_hands(layout.active, str(row["flow_id"]))
    places += inbox
    if kept is None:  # it may reach the archive (or failed/) while we look
        places += [p for p in [original_path(layout, row)] if p is not None]
    return name or stored_name(row), places


def _in_hands(active: Path, flow_id: str) -> list[Path]:
    """The flow in any process's hand (recovery moves a flow to the hand of the process that takes it back)."""
    try:
        with os.scandir(active) as hands:
            return [Path(h.path) / flow_id for h in hands if h.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _stream(opened: IO[bytes], name: str) -> Response:
    head = opened.read(8)
    opened.seek(0)
    media = next((m for magic, m in MEDIA_TYPES if head.startswith(magic)), None)
    if media is None:
        xml = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
        media = "application/xml" if xml else "application/octet-stream"
    size = os.fstat(opened.fileno()).st_size
    headers = {"Content-Disposition": attachment(name), "Content-Length": str(size)}
    return StreamingResponse(_chunks(opened), media_type=media, headers=headers)


def _chunks(opened: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := opened.read(CHUNK):
            yield chunk
    finally:
        opened.close()


def search_flows(api: Api) -> Endpoint:
    """``POST /v1/flows/search``: a page of the client's flows (:func:`edi.api.flows.search`)."""

    async def endpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_SEARCH_BYTES:
                raise ApiError(413, "PAYLOAD_TOO_LARGE", f"a search is at most {MAX_SEARCH_BYTES} bytes")
        result: Response = await run_in_threadpool(_search, api, request, body)
        return result

    return endpoint


def _search(api: Api, request: Request, body: bytes) -> Response:
    client = api.client(request)
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: 64 KiB of nested brackets
        raise ApiError(400, INVALID_REQUEST, "the search is a JSON object: {limit, cursor, where}") from None
    if isinstance(parsed, dict) and "where" not in parsed:
        raise ApiError(400, MISSING_REQUIRED_FIELD, "where is required: at least one criterion")
    try:
        query = flows.parse_search(parsed)
        with api.reader.reading():
            page = flows.search(api.reader.connection(), api.layout, client.sender, query, api.now())
    except flows.SearchError as exc:
        raise ApiError(400, INVALID_REQUEST, str(exc)) from None
    return JSONResponse(page)


def routes(api: Api) -> list[BaseRoute]:
    """The reads' routes, under the base path."""
    return [
        Route("/v1/flows/search", search_flows(api), methods=["POST"]),
        Route("/v1/flows/{flowId}", get_flow(api), methods=["GET"]),
    ]
