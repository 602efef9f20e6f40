"""Tests for edi.check (``edi validate``): offline validation honours the time budget of the business rules."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.invoices import nameless_invoice, templates
from edi.check import Checker
from edi.config import LimitsSettings
from edi.model import Code
from edi.validate.schematron import TIMEOUT_RULE, BusinessRules
from tests.conftest import FLOWS


def test_a_file_whose_rules_outrun_the_budget_is_not_valid_and_the_next_is_checked(tmp_path: Path) -> None:
    """With limits.validate_seconds = 1, a file whose rules take longer is not valid within moments of the budget,
    each of its rule layers not run (VALIDATE_TIMEOUT); the next file is validated as usual."""
    slow = tmp_path / "slow.xml"
    slow.write_bytes(nameless_invoice(templates()[0], 1, 8000))
    checker = Checker(("xsd", "en16931", "br-fr"), LimitsSettings(validate_seconds=1))
    assert checker.check(FLOWS / "acme" / "01-ubl-invoice.xml").valid  # rules compiled outside any budget
    started = time.monotonic()
    result = checker.check(slow)
    assert time.monotonic() - started < 4.0
    assert not result.valid and result.document.layers == ("xsd", "en16931", "br-fr")
    assert {(f.code, f.rule, f.layer.value) for f in result.document.findings} == {
        (Code.LAYER_NOT_RUN, TIMEOUT_RULE, "en16931"),
        (Code.LAYER_NOT_RUN, TIMEOUT_RULE, "br-fr"),
    }
    assert checker.check(FLOWS / "acme" / "01-ubl-invoice.xml").valid


def test_edi_validate_has_the_default_budget() -> None:
    """`edi validate` (a Checker without settings) gives business rules the default limits.validate_seconds."""
    (rules,) = [s for s in Checker().stages if isinstance(s, BusinessRules)]
    assert rules.runner.seconds == LimitsSettings().validate_seconds == 30.0
