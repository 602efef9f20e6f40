"""The API's errors, as the standard's ``Error`` body says them: ``{"errorCode", "errorMessage"}``.

Every refusal of the API is an :class:`ApiError` (an HTTP status, a stable code, a message for people); the app
turns it into the JSON answer, with the request's ``Request-Id`` echoed. Reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

# the standard's example codes (XP Z12-013 Annex A, components/examples), and ours beside them
MISSING_TOKEN = "MISSING_TOKEN"  # noqa: S105 (an error code)
INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105
FORBIDDEN_ACCESS = "FORBIDDEN_ACCESS"
MISSING_REQUIRED_FIELD = "MISSING_REQUIRED_FIELD"
INVALID_REQUEST = "INVALID_REQUEST"
UNPROCESSABLE_ENTITY = "UNPROCESSABLE_ENTITY"
MISSING_RESOURCE = "MISSING_RESOURCE"
FILE_SIZE_EXCEEDED = "FILE_SIZE_EXCEEDED"
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
INTERNAL_ERROR = "INTERNAL_ERROR"
RESOURCE_ERROR = "RESOURCE_ERROR"  # the store or the disk cannot be used now: 503
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # a request body over its route's limit (a file: FILE_SIZE_EXCEEDED): 413
REQUEST_TIMEOUT = "REQUEST_TIMEOUT"  # a client silent too long while its body is expected: 408


class ApiError(Exception):
    """A request the API refuses: answered ``status`` with ``{"errorCode": code, "errorMessage": message}``."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        """The standard's Error object."""
        return {"errorCode": self.code, "errorMessage": self.message}
