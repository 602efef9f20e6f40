"""``POST {base}/v1/flows``: a client deposits a flow (multipart ``flowInfo`` + ``file``) into its sender's inbox.

The body is read as it comes (python-multipart's streaming parser; never held whole in memory, never spooled
elsewhere): ``flowInfo`` is checked as soon as its part ends, the file's bytes go straight to
``tmp/deposits/<flow_id>`` (:class:`edi.deposits.Upload`), counted and hashed on the way, and a file over
min(``[limits] max_flow_bytes``, the standard's 100 MB) is refused (413 ``FILE_SIZE_EXCEEDED``) the moment it
passes the limit, without reading the rest. Then, in this order (why: :mod:`edi.deposits`): the checks (``sha256``
given and not the bytes' 422 ``ChecksumMismatch``; ``flowSyntax`` not what the bytes are 422
``UNPROCESSABLE_ENTITY``), the bytes made durable, the ``api_deposits`` row committed, the file renamed into
``inbox/<sender>/`` (:func:`edi.spool.place`, folder fsynced), and only then ``202`` with the standard's
``FullFlowInfo``. A refusal deposits nothing and leaves nothing behind.

Whether the bytes are the declared syntax is decided from their beginning with edi's own recognition
(:mod:`edi.ingest.sniff`, :mod:`edi.ingest.recognise`): a PDF is ``Factur-X``; XML whose root element is a UBL
``Invoice`` / ``CreditNote`` is ``UBL``, a ``CrossIndustryInvoice`` ``CII``, a ``CrossDomainAcknowledgementAndResponse``
``CDAR``; a ZIP or tar.gz batch is taken under any syntax but ``FRR`` (its members are recognised one by one when
processed). An empty file, or XML that cannot be read as far as its root element, is taken: processing answers it
(``IRR_VIDE_F``, ``IRR_SYNTAX``) in the acknowledgement, as it does for the folders. ``FRR`` (e-reporting) is refused:
edi does not process e-reporting.

Writes ``tmp/deposits/``, the sender's inbox and the store's ``api_deposits`` table; raises :class:`ApiError`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from lxml import etree
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from edi.api import limits
from edi.api.clients import ApiClient
from edi.api.errors import (
    FILE_SIZE_EXCEEDED,
    FORBIDDEN_ACCESS,
    INVALID_REQUEST,
    MISSING_REQUIRED_FIELD,
    RESOURCE_ERROR,
    UNPROCESSABLE_ENTITY,
    ApiError,
)
from edi.api.standard import FLOW_PROFILES, FLOW_SYNTAXES, PROCESSING_RULES
from edi.clock import FlowIds, iso
from edi.deposits import Upload, inbox_name
from edi.errors import EdiError
from edi.faults import fault_point
from edi.ingest.recognise import recognise
from edi.ingest.sniff import Kind, sniff

if TYPE_CHECKING:
    from edi.api.app import Api

log = structlog.get_logger()

CHECKSUM_MISMATCH = "ChecksumMismatch"  # the standard's acknowledgement reason code, as the 422's errorCode
STANDARD_MAX_BYTES = 100 * 1024 * 1024  # "Flow file: Max size = 100 MB"
MULTIPART_SLACK = 1024 * 1024  # the body's cap (edi.api.limits) is the file's limit and this, for flowInfo and framing
FLOW_INFO_MAX_BYTES = 64 * 1024  # flowInfo is a few short fields
OTHER_PART_MAX_BYTES = 64 * 1024  # parts the standard does not name are read and dropped, up to this
HEAD_BYTES = 64 * 1024  # the file's beginning, kept to tell what it is
SHA256 = re.compile(r"[a-f0-9]{64}")
BATCH = "batch"


@dataclass(frozen=True, slots=True)
class FlowInfo:
    """The ``flowInfo`` a client sent, checked."""

    name: str
    flow_syntax: str
    tracking_id: str | None = None
    processing_rule: str | None = None
    flow_profile: str | None = None
    sha256: str | None = None

    def given(self) -> dict[str, str]:
        """The fields as the standard names them, those given only."""
        fields = {
            "name": self.name,
            "flowSyntax": self.flow_syntax,
            "trackingId": self.tracking_id,
            "processingRule": self.processing_rule,
            "flowProfile": self.flow_profile,
            "sha256": self.sha256,
        }
        return {k: v for k, v in fields.items() if v is not None}


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, INVALID_REQUEST, f"flowInfo.{field}: {message}")


def parse_flow_info(raw: bytes) -> FlowInfo:
    """The ``flowInfo`` part's JSON, checked against the standard's ``FlowInfo``; 400 naming the field otherwise
    (fields the standard does not define are ignored)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, INVALID_REQUEST, "flowInfo: not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, INVALID_REQUEST, "flowInfo: not a JSON object")
    for required in ("name", "flowSyntax"):
        if data.get(required) in (None, ""):
            raise ApiError(400, MISSING_REQUIRED_FIELD, f"flowInfo.{required} is required")
    name, syntax = data["name"], data["flowSyntax"]
    if not isinstance(name, str) or len(name) > 255:
        raise _bad("name", "a string of at most 255 characters")
    if syntax not in FLOW_SYNTAXES:
        raise _bad("flowSyntax", f"one of {', '.join(FLOW_SYNTAXES)}")
    optional: dict[str, tuple[str, Callable[[Any], bool], str]] = {  # attribute: field, valid, what is wanted
        "tracking_id": (
            "trackingId",
            lambda v: isinstance(v, str) and len(v) <= 64,
            "a string of 64 characters at most",
        ),
        "processing_rule": ("processingRule", lambda v: v in PROCESSING_RULES, f"one of {', '.join(PROCESSING_RULES)}"),
        "flow_profile": ("flowProfile", lambda v: v in FLOW_PROFILES, f"one of {', '.join(FLOW_PROFILES)}"),
        "sha256": ("sha256", lambda v: isinstance(v, str) and SHA256.fullmatch(v) is not None, "64 hex digits a-f0-9"),
    }
    given: dict[str, str] = {}
    for attribute, (field, valid, wanted) in optional.items():
        value = data.get(field)
        if value is None:
            continue
        if not valid(value):
            raise _bad(field, wanted)
        given[attribute] = value
    return FlowInfo(name, syntax, **given)


def what_it_is(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is, as a ``flowSyntax`` (or :data:`BATCH` for a ZIP or tar.gz
    batch, or words saying what else it is); None when its beginning does not tell (empty, or XML that cannot be
    read as far as its root element): processing will say what is wrong with it."""
    kind = sniff(head)
    if kind is Kind.EMPTY:
        return None
    if kind in (Kind.ZIP, Kind.GZIP):
        return BATCH
    if kind is Kind.PDF:
        return "Factur-X"
    if kind is not Kind.XML:
        return "neither XML, PDF nor a ZIP batch"
    root = _root(head)
    if root is None:
        return None
    recognised = recognise(root)
    if recognised is not None:
        return recognised.syntax
    tag = etree.QName(root)
    return f"XML whose root element is {tag.localname}" + (f" in {tag.namespace}" if tag.namespace else "")


def _root(head: bytes) -> etree._Element | None:
    """The root element of the XML that ``head`` begins (without its children), None if it cannot be read."""
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
    )
    try:
        parser.feed(head)
        for _, element in parser.read_events():
            return element
    except (etree.LxmlError, ValueError):
        return None
    return None


def check_content(info: FlowInfo, head: bytes, sha256: str) -> None:
    """Refuse (422) bytes that are not the ``sha256`` given, or not the ``flowSyntax`` declared."""
    if info.sha256 is not None and info.sha256 != sha256:
        raise ApiError(422, CHECKSUM_MISMATCH, f"flowInfo.sha256 is {info.sha256}; the file received is {sha256}")
    found = what_it_is(head)
    if found is None or found == info.flow_syntax or (found == BATCH and info.flow_syntax != "FRR"):
        return
    what = "a ZIP batch" if found == BATCH else found
    raise ApiError(422, UNPROCESSABLE_ENTITY, f"flowInfo.flowSyntax is {info.flow_syntax} but the file is {what}")


class Body:
    """The multipart body of one deposit, fed as it arrives: ``flowInfo`` kept and checked, the file written to
    ``upload`` (counted, hashed, its beginning kept), anything else dropped."""

    def __init__(self, boundary: bytes, upload: Upload, limit: int) -> None:
        self.upload, self.limit = upload, limit
        self.info: FlowInfo | None = None
        self.file_seen = False
        self.ended = False  # the closing boundary was read: every part is whole
        self.head = bytearray()
        self.sha = hashlib.sha256()
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = bytearray(), bytearray()
        self._part: str | None = None  # "flowInfo", "file", or "" for a part we drop
        self._kept = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
                "on_end": self._body_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        """Parse the next bytes of the body."""
        self.parser.write(chunk)

    def finish(self) -> FlowInfo:
        """The checked ``flowInfo`` once the body has ended; 400 when a part is missing."""
        self.parser.finalize()
        if not self.ended:
            raise ApiError(400, INVALID_REQUEST, "the body ends before its closing boundary: a part is cut short")
        if self.info is None:
            raise ApiError(400, MISSING_REQUIRED_FIELD, "the flowInfo part is required")
        if not self.file_seen:
            raise ApiError(400, MISSING_REQUIRED_FIELD, "the file part is required")
        return self.info

    def _begin(self) -> None:
        self._headers, self._part = {}, None
        self._kept = bytearray()

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name in ("flowInfo", "file"):
            if (name == "file" and self.file_seen) or (name == "flowInfo" and self.info is not None):
                raise ApiError(400, INVALID_REQUEST, f"the {name} part is sent twice")
            self.file_seen = self.file_seen or name == "file"
        self._part = name if name in ("flowInfo", "file") else ""

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part == "file":
            if self.upload.size + len(chunk) > self.limit:
                raise ApiError(
                    413, FILE_SIZE_EXCEEDED, f"the file is larger than {self.limit} bytes, the most this service takes"
                )
            self.upload.write(chunk)
            self.sha.update(chunk)
            if len(self.head) < HEAD_BYTES:
                self.head += chunk[: HEAD_BYTES - len(self.head)]
            return
        self._kept += chunk
        cap = FLOW_INFO_MAX_BYTES if self._part == "flowInfo" else OTHER_PART_MAX_BYTES
        if len(self._kept) > cap:
            raise ApiError(400, INVALID_REQUEST, f"the {self._part or 'unknown'} part is longer than {cap} bytes")

    def _body_end(self) -> None:
        self.ended = True

    def _end(self) -> None:
        if self._part == "flowInfo":
            self.info = parse_flow_info(bytes(self._kept))
        self._kept = bytearray()


def _boundary(request: Request) -> bytes:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError(400, INVALID_REQUEST, "send multipart/form-data with a flowInfo part and a file part")
    return boundary


def create_flow(api: Api) -> Callable[[Request], Awaitable[Response]]:
    """``POST /v1/flows``."""
    ids = FlowIds(api.clock)
    limit = min(api.settings.limits.max_flow_bytes, STANDARD_MAX_BYTES)
    senders = {s.id: s for s in api.settings.senders}

    async def endpoint(request: Request) -> Response:
        try:
            client: ApiClient = await run_in_threadpool(api.client, request)
            if client.sender not in senders:
                raise ApiError(403, FORBIDDEN_ACCESS, f"the client's sender {client.sender!r} takes no flows here")
            boundary = _boundary(request)
            limits.allow_body(request, limit + MULTIPART_SLACK, FILE_SIZE_EXCEEDED)  # Content-Length over it: 413
        except ApiError as exc:  # refused before its body is read: the connection is closed after the answer
            exc.headers.setdefault("Connection", "close")
            raise
        flow_id = ids.new()
        try:
            upload = await run_in_threadpool(Upload, api.layout, flow_id)
        except OSError as exc:
            log.error("api deposit: cannot write", error=str(exc))
            raise ApiError(503, RESOURCE_ERROR, "the service cannot store a flow now; try again later") from None
        try:
            body = Body(boundary, upload, limit)
            try:
                async for chunk in request.stream():
                    body.feed(chunk)
            except ClientDisconnect:
                log.info("api deposit: the client went away before the end of its body", flow_id=flow_id)
                return Response(status_code=400)
            except ApiError as exc:  # the rest of the body is not read: the connection is closed after the answer
                exc.headers.setdefault("Connection", "close")
                raise
            except MultipartParseError as exc:
                message = f"the body is not well-formed multipart/form-data: {exc}"
                raise ApiError(400, INVALID_REQUEST, message, {"Connection": "close"}) from None
            except OSError as exc:
                log.error("api deposit: cannot write", flow_id=flow_id, error=str(exc))
                message = "the service cannot store a flow now; try again later"
                raise ApiError(503, RESOURCE_ERROR, message, {"Connection": "close"}) from None
            info = body.finish()
            sha256 = body.sha.hexdigest()
            check_content(info, bytes(body.head), sha256)
            row = {
                "flow_id": flow_id,
                "sender": client.sender,
                "inbox_name": inbox_name(flow_id, info.name, api.settings.intake.ignore),
                "name": info.name,
                "flow_syntax": info.flow_syntax,
                "flow_profile": info.flow_profile,
                "processing_rule": info.processing_rule,
                "tracking_id": info.tracking_id,
                "sha256": sha256,
                "size": upload.size,
                "client_id": client.client_id,
                "request_id": structlog.contextvars.get_contextvars().get("request_id"),
                "submitted_at": iso(api.now()),
            }
            await run_in_threadpool(_land, api, upload, row)
        finally:
            upload.close()
        log.info(
            "api deposit",
            flow_id=flow_id,
            sender=client.sender,
            client=client.name,
            client_id=client.client_id,
            request_id=row["request_id"],
            name=info.name,
            flow_syntax=info.flow_syntax,
            size=row["size"],
        )
        fault_point("deposit.after_rename")  # in the inbox and recorded; not answered
        full = {"flowId": flow_id, "submittedAt": row["submitted_at"], **info.given(), "sha256": sha256}
        return JSONResponse(full, status_code=202)

    return endpoint


def _land(api: Api, upload: Upload, row: dict[str, Any]) -> None:
    """Make the bytes durable, record the deposit, rename it into the inbox, each step only once the one before it
    is durable; 503 when that fails (nothing deposited, unless the record could not be taken back: the upload is
    then kept, and the next run puts it in the inbox)."""
    try:
        upload.make_durable()
        fault_point("deposit.before_record")  # durable, not recorded
        with api.store() as store:
            store.record_deposit(row)
            upload.recorded = True
            try:
                fault_point("deposit.after_record")  # recorded, not in the inbox
                upload.place(api.layout.sender_inbox(row["sender"]) / row["inbox_name"])
            except BaseException:
                store.forget_deposit(row["flow_id"])
                upload.recorded = False
                raise
    except (OSError, sqlite3.Error, EdiError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.error("api deposit failed", flow_id=row["flow_id"], error=error, kept=upload.recorded)
        raise ApiError(503, RESOURCE_ERROR, "the flow could not be stored; try again later") from None


def routes(api: Api) -> list[BaseRoute]:
    """The deposit route."""
    return [Route("/v1/flows", create_flow(api), methods=["POST"])]
