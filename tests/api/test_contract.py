"""The API against its contract: schemathesis generates requests from the AFNOR XP Z12-013 Flow Service OpenAPI
(`../shared/specs/afnor-flow-service-1.3.0.json`, skipped when absent) and sends them to a live `edi serve` (the real
executable), positive and negative cases, with a client's token and without; every answer is checked against the
standard: no 5xx, documented status codes, content types, response bodies and headers as the schemas say, invalid
requests refused, authentication required.

Where the standard is defective or edi refuses on purpose what the schema would accept, the check is excluded for
that operation only, each exclusion with its reason (EXCLUDED, below; docs/api.md says the choices).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edi.config import load_settings
from edi.runner import init_workspace
from tests.api.conftest import BASE
from tests.conftest import DEFAULT_CONFIG, FLOWS, Workspace

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "afnor-flow-service-1.3.0.json"
if not SPEC.is_file():
    pytest.skip(f"the AFNOR Flow Service OpenAPI is not at {SPEC}", allow_module_level=True)

import schemathesis  # noqa: E402 (only once the spec is known to be there)
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from tests.api.live import Live  # noqa: E402

schema = schemathesis.openapi.from_path(SPEC)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

# operationId -> checks not applied, and why
EXCLUDED: dict[str, tuple[tuple[Any, str], ...]] = {
    "createFlow": (
        (
            checks.positive_data_acceptance,
            "a generated file is random bytes: edi refuses (422) a file that is not what its flowSyntax says, and a "
            "sha256 that does not match it; both are checks the standard asks for (flowInfo.sha256) or allows (422)",
        ),
    ),
    "getFlow": (
        (
            checks.positive_data_acceptance,
            "a generated flowId names no flow of the client's sender: 404, as the standard says for an unknown id",
        ),
    ),
    "searchFlows": (
        (
            checks.positive_data_acceptance,
            "a generated cursor (the schema's example among them) is not one edi issued: it is refused (400), as an "
            "opaque cursor must be; every other criterion a schema-valid search gives is taken",
        ),
    ),
    "getHealth": (
        (
            checks.ignored_auth,
            "the health check answers without a token, on purpose: monitors and load balancers probe it without "
            "credentials, and it says only whether the service can read its store (docs/api.md)",
        ),
        (
            checks.status_code_conformance,
            "the standard documents no 400 for the health check, yet says its Request-Id header is a UUID: edi "
            "refuses a malformed Request-Id (400) on every operation alike",
        ),
    ),
    "deleteWebhook": ((checks.positive_data_acceptance, "a generated webhookUid names no webhook of the client: 404"),),
    "createWebhook": (
        (
            checks.positive_data_acceptance,
            "a generated callbackUrl is not on [api] webhook_allowed_hosts: refused, so that edi never calls an "
            "address its operator did not allow (issue 26)",
        ),
    ),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A live `edi serve` of a fresh workspace, and a client of sender acme with its token."""
    folder = tmp_path_factory.mktemp("contract")
    config = folder / "config.toml"
    text = textwrap.dedent(DEFAULT_CONFIG).format(directory=FLOWS / "directory.toml")
    # the brakes are tested on their own (test_limits.py); here they would answer 429 to the generator's flood, a
    # status the standard documents for the flows' operations only
    api = (
        '[api]\nwebhook_allowed_hosts = ["hooks.example.com"]\nrate_per_minute = 1000000\nrate_burst = 100000\n'
        "guesses_per_minute = 1000000\nguess_burst = 100000\n"
    )
    config.write_text(f"{text}\n{api}", encoding="utf-8")
    ws = Workspace(config, load_settings(config))
    init_workspace(ws.settings)
    live = Live(ws)
    yield live
    live.kill()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_the_standards_contract(case: Any, server: Live) -> None:
    """Every operation, fed generated valid and invalid requests, answers as the standard's schemas say."""
    excluded = [check for check, _ in EXCLUDED.get(case.operation.definition.raw.get("operationId", ""), ())]
    case.call_and_validate(
        base_url=server.url + BASE, headers=dict(server.headers), excluded_checks=excluded, timeout=60
    )
