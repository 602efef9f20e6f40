"""The webhooks' keys and signatures (edi.api.signing): one workspace key made once, per-webhook keys derived from
it, the standard's signature over <body>@<epoch>."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
import threading

import pytest

from edi.api.signing import KEY_FILE, SigningError, encoded, signature, signing_key, workspace_key
from tests.conftest import Workspace


def test_the_workspace_key_is_made_once(workspace: Workspace) -> None:
    """Without make, a workspace without the key has none; with it, the key is made once (mode 0600, 32 bytes) and
    processes that make it at once all get the same one."""
    layout = workspace.settings.workspace.layout()
    assert workspace_key(layout) is None
    found: list[bytes | None] = []
    threads = [threading.Thread(target=lambda: found.append(workspace_key(layout, make=True))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and found[0] is not None and len(found[0]) == 32
    assert stat.S_IMODE((workspace.root / KEY_FILE).stat().st_mode) == 0o600
    assert workspace_key(layout) == found[0]
    assert not list(layout.tmp.glob(f".{KEY_FILE}*"))  # no temporary file left


def test_a_damaged_key_file_is_refused(workspace: Workspace) -> None:
    """A key file that is not 32 bytes is refused, saying what to do; it is not replaced."""
    (workspace.root / KEY_FILE).write_bytes(b"short")
    with pytest.raises(SigningError, match="move it away"):
        workspace_key(workspace.settings.workspace.layout(), make=True)
    assert (workspace.root / KEY_FILE).read_bytes() == b"short"


def test_the_signature_is_the_standards() -> None:
    """Afnor-Signature = base64(HMAC-SHA-256(key, body + '@' + epoch)); each webhook's key differs and is stable."""
    master = bytes(range(32))
    key = signing_key(master, "3f2b8c1e-0000-4000-8000-000000000001")
    assert key == signing_key(master, "3f2b8c1e-0000-4000-8000-000000000001")
    assert key != signing_key(master, "3f2b8c1e-0000-4000-8000-000000000002")
    body = b'{"flowId":"20261206T121634123456-9f3ab2"}'
    expected = base64.b64encode(hmac.new(key, body + b"@1765000000", hashlib.sha256).digest()).decode()
    assert signature(key, body, 1765000000) == expected
    assert base64.b64decode(encoded(key)) == key
