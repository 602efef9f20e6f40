"""Realistic invoice flows for the benchmarks, made from the XML samples in ``flows/``.

Each flow is one invoice or credit note (UBL 2.1 or CII), with its own number and a number of lines drawn from a
long-tailed distribution (most invoices have a few lines, some have hundreds): files range from about 5 KB to about
1 MB; or, with ``lines=1`` (the benchmarks' ``--small``), one-line invoices of 4.8-6.8 KB. Each line has its own
quantity and VAT rate (20, 10 or 5.5 %, category S), and the VAT breakdown (one entry per rate) and the totals are
those of the lines: a flow is valid under the XSD and EN 16931 (the shipped ``validation.rules``), except the
deliberately broken ones. About 5 % are invalid under the XSD in the ways senders get wrong (an element the schema does
not allow, a missing mandatory element, a file cut short, a date that is not a date), and about 2 % are valid under
the XSD but break BR-CO-16 (an amount due one cent off); :attr:`Flow.broken` says which. Deterministic for a given
seed (tests/benchmarks/test_invoices.py runs the real `edi batch` on them).

Reads the samples in ``flows/``; :func:`write_flows` writes files into a folder; raises OSError.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLOWS = REPO / "flows"


@dataclass(frozen=True, slots=True)
class Template:
    """A sample split around its lines: what comes before them, one line, what comes after."""

    name: str
    head: str
    line: str
    tail: str
    number: str  # the invoice number in the sample, replaced in each flow
    line_id: str  # the line's identifier element, e.g. "<cbc:ID>1</cbc:ID>"


def _template(path: str, number: str, line_tag: str, line_id: str) -> Template:
    text = (FLOWS / path).read_text(encoding="utf-8")
    assert number in text, f"{number} is not the invoice number of {path}"
    lines = list(re.finditer(rf"[ \t]*<{line_tag}>.*?</{line_tag}>\n", text, re.DOTALL))
    head, tail = text[: lines[0].start()], text[lines[-1].end() :]
    return Template(path, head, lines[0].group(0), tail, number, line_id)


def templates() -> list[Template]:
    """The samples flows are made from: UBL invoice and credit note, CII invoices."""
    return [
        _template("acme/01-ubl-invoice.xml", "FA-2026-0001", "cac:InvoiceLine", "<cbc:ID>1</cbc:ID>"),
        _template("acme/02-ubl-creditnote.xml", "AV-2026-0001", "cac:CreditNoteLine", "<cbc:ID>1</cbc:ID>"),
        _template("opdemat/02-initech-ubl-voirie.xml", "IN-2026-0043", "cac:InvoiceLine", "<cbc:ID>1</cbc:ID>"),
        _template(
            "acme/03-cii-invoice.xml",
            "FA-2026-0002",
            "ram:IncludedSupplyChainTradeLineItem",
            "<ram:LineID>1</ram:LineID>",
        ),
        _template(
            "opdemat/01-initech-cii-basic.xml",
            "IN-2026-0042",
            "ram:IncludedSupplyChainTradeLineItem",
            "<ram:LineID>1</ram:LineID>",
        ),
    ]


def line_count(rng: random.Random) -> int:
    """How many lines an invoice has: median about 4, one in ten over 40, a few in a thousand over 1000."""
    return max(1, min(2000, round(rng.lognormvariate(1.4, 1.4))))


CENT = Decimal("0.01")
# each line's VAT rate (category S), by its number: mostly 20 %, some 10 % and 5.5 % (a breakdown of up to 3 rates)
RATES = (Decimal("20"), Decimal("10"), Decimal("5.5"))


def line_terms(number: int) -> tuple[Decimal, Decimal]:
    """Line ``number``'s quantity (1 to 12) and VAT rate: a function of the number only."""
    rate = RATES[1] if number % 5 == 0 else RATES[2] if number % 7 == 0 else RATES[0]
    return Decimal(1 + (number * 7) % 12), rate


def _put(text: str, tag: str, value: object, count: int = 1) -> str:
    """``text`` with the content of the first ``count`` ``<tag>`` elements (with or without attributes) set to
    ``value``; each must be there."""
    done, made = re.subn(rf"(<{tag}(?:\s[^>]*)?>)[^<]*(</{tag}>)", rf"\g<1>{value}\g<2>", text, count=count)
    assert made == count, f"{made} <{tag}> where {count} were expected"
    return done


def _get(text: str, tag: str) -> Decimal:
    found = re.search(rf"<{tag}(?:\s[^>]*)?>([^<]*)</{tag}>", text)
    assert found, f"no <{tag}>"
    return Decimal(found.group(1))


def _amount(value: Decimal) -> str:
    return f"{value.quantize(CENT, ROUND_HALF_UP)}"


def _rate(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _lines(template: Template, lines: int) -> tuple[str, dict[Decimal, Decimal]]:
    """The ``lines`` lines made from the template's line (numbered; quantity and rate by number; net amount =
    quantity x net price), and the sum of the net amounts per VAT rate."""
    cii = template.line_id.startswith("<ram:")
    tag = template.line_id.split(">", 1)[0]
    quantity_tag = "ram:BilledQuantity" if cii else "cbc:(?:Invoiced|Credited)Quantity"
    amount_tag = "ram:LineTotalAmount" if cii else "cbc:LineExtensionAmount"
    rate_tag = "ram:RateApplicablePercent" if cii else "cbc:Percent"
    price = _get(template.line, "ram:ChargeAmount" if cii else "cbc:PriceAmount")
    skeleton = template.line.replace(template.line_id, f"{tag}>\1{tag.replace('<', '</')}>", 1)
    skeleton = _put(_put(_put(skeleton, quantity_tag, "\2"), amount_tag, "\3"), rate_tag, "\4")
    sums: dict[Decimal, Decimal] = {}
    parts = []
    for number in range(1, lines + 1):
        quantity, rate = line_terms(number)
        amount = (quantity * price).quantize(CENT, ROUND_HALF_UP)
        sums[rate] = sums.get(rate, Decimal(0)) + amount
        line = skeleton.replace("\1", str(number)).replace("\2", str(quantity)).replace("\3", _amount(amount))
        parts.append(line.replace("\4", _rate(rate)))
    return "".join(parts), sums


def _totals(template: Template, sums: dict[Decimal, Decimal]) -> str:
    """The template's text around its lines with the VAT breakdown (one per rate) and the document totals of lines
    whose net amounts per rate are ``sums``: head and tail joined by a marker where the lines go."""
    cii = template.line_id.startswith("<ram:")
    text = template.head + "\0" + template.tail
    breakdown = {rate: (base, (base * rate / 100).quantize(CENT, ROUND_HALF_UP)) for rate, base in sums.items()}
    lines_total = sum(sums.values(), Decimal(0))
    tax = sum((vat for _, vat in breakdown.values()), Decimal(0))
    # the breakdown's one entry (the lines, with theirs, are not in the text)
    block = (
        r"[ \t]*<ram:ApplicableTradeTax>.*?</ram:ApplicableTradeTax>\n"
        if cii
        else r"[ \t]*<cac:TaxSubtotal>.*?</cac:TaxSubtotal>\n"
    )
    found = re.search(block, text, re.DOTALL)
    assert found, f"{template.name}: no VAT breakdown"
    one = found.group(0)
    names = (
        ("ram:BasisAmount", "ram:CalculatedAmount", "ram:RateApplicablePercent")
        if cii
        else ("cbc:TaxableAmount", "cbc:TaxAmount", "cbc:Percent")
    )
    copies = "".join(
        _put(_put(_put(one, names[0], _amount(base)), names[1], _amount(vat)), names[2], _rate(rate))
        for rate, (base, vat) in sorted(breakdown.items(), reverse=True)
    )
    text = text[: found.start()] + copies + text[found.end() :]
    total = lines_total + tax
    summation: tuple[tuple[str, Decimal], ...]
    if cii:
        summation = (
            ("ram:LineTotalAmount", lines_total),
            ("ram:TaxBasisTotalAmount", lines_total),
            ("ram:TaxTotalAmount", tax),
            ("ram:GrandTotalAmount", total),
            ("ram:DuePayableAmount", total),
        )
        head, summary = text.split("<ram:SpecifiedTradeSettlementHeaderMonetarySummation>")
    else:
        summation = (
            ("cbc:LineExtensionAmount", lines_total),
            ("cbc:TaxExclusiveAmount", lines_total),
            ("cbc:TaxInclusiveAmount", total),
            ("cbc:PayableAmount", total),
        )
        head, summary = re.split(r"(?=<cac:LegalMonetaryTotal>)", text)
        head = re.sub(r"(<cac:TaxTotal>\s*<cbc:TaxAmount[^>]*>)[^<]*", rf"\g<1>{_amount(tax)}", head, count=1)
    for name, value in summation:
        summary = _put(summary, name, _amount(value))
    joint = "<ram:SpecifiedTradeSettlementHeaderMonetarySummation>" if cii else ""
    return head + joint + summary


def invoice(template: Template, serial: int, lines: int) -> bytes:
    """One invoice made from ``template``: number made unique with ``serial``, ``lines`` lines (each with its own
    quantity and VAT rate), its totals and VAT breakdown those of its lines: valid under EN 16931."""
    number = f"{template.number}-{serial:07d}"
    body, sums = _lines(template, lines)
    head, tail = _totals(template, sums).split("\0")
    return (head + body + tail).replace(template.number, number).encode("utf-8")


def nameless_invoice(template: Template, serial: int, lines: int) -> bytes:
    """An invoice of ``lines`` lines none of which names its item (BT-153): EN 16931 fires BR-25 on every line, and
    each finding's location counts the line's earlier siblings."""
    data = invoice(template, serial, lines)
    name = rb"<cbc:Name>[^<]*</cbc:Name>\s*(?=<cac:SellersItemIdentification|<cac:ClassifiedTaxCategory)"
    if template.line_id.startswith("<ram:"):
        name = rb"<ram:Name>[^<]*</ram:Name>\s*(?=</ram:SpecifiedTradeProduct>)"
    nameless, count = re.subn(name, b"", data)
    assert count == lines, f"{template.name}: {count} item names removed, not {lines}"
    return nameless


FRAMES = ("S8", "B8", "M8", "S9", "B9", "M9")  # billing frames (BT-23) whose lines come in groups (French reform)


def grouped_invoice(template: Template, serial: int, lines: int, per_group: int, frame: str = "B8") -> bytes:
    """An invoice of billing frame ``frame`` made from ``template``, its lines in groups of ``per_group``: a GROUP
    line, then DETAIL lines that name it as their parent (UBL: ``cac:BillingReference``; CII: ``ram:ParentLineID``
    and ``ram:LineStatusReasonCode``). BR-FR looks each detail line's group up among all the lines."""
    cii = template.line_id.startswith("<ram:")
    parts = []
    for i in range(1, lines + 1):
        group = i - (i - 1) % per_group
        status = "GROUP" if group == i else "DETAIL"
        line = template.line.replace(template.line_id, template.line_id.replace(">1<", f">{i}<"), 1)
        if cii:
            parent = f"<ram:ParentLineID>{group}</ram:ParentLineID>" if status == "DETAIL" else ""
            mark = f"{parent}<ram:LineStatusReasonCode>{status}</ram:LineStatusReasonCode>"
            line = line.replace("</ram:LineID>", "</ram:LineID>" + mark, 1)
        else:
            parent = f"<cac:BillingReferenceLine><cbc:ID>{group}</cbc:ID></cac:BillingReferenceLine>"
            reference = (
                f"<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>{template.number}</cbc:ID>"
                f"<cbc:DocumentStatusCode>{status}</cbc:DocumentStatusCode></cac:InvoiceDocumentReference>"
                f"{parent if status == 'DETAIL' else ''}</cac:BillingReference>"
            )
            line = line.replace("</cbc:LineExtensionAmount>", "</cbc:LineExtensionAmount>" + reference, 1)
        parts.append(line)
    text = template.head + "".join(parts) + template.tail
    profile = r"(<cbc:ProfileID>|<ram:BusinessProcessSpecifiedDocumentContextParameter>\s*<ram:ID>)[^<]*"
    text, framed = re.subn(profile, lambda m: m.group(1) + frame, text, count=1)
    assert framed == 1, f"{template.name} names no billing frame"
    return text.replace(template.number, f"{template.number}-{serial:07d}").encode("utf-8")


SPOILS: dict[str, list[tuple[bytes, bytes]]] = {  # (pattern, replacement): the first that matches is applied
    "unknown-element": [  # an element the schema does not allow
        (rb"</cbc:IssueDate>", rb"</cbc:IssueDate><cbc:Unknown>1</cbc:Unknown>"),
        (rb"</ram:TypeCode>", rb"</ram:TypeCode><ram:Unknown>1</ram:Unknown>"),
    ],
    "missing-element": [  # a mandatory element missing
        (rb"<cbc:IssueDate>[^<]*</cbc:IssueDate>", b""),
        (rb"<udt:DateTimeString[^>]*>[^<]*</udt:DateTimeString>", b""),
    ],
    "cut-short": [],  # the first two thirds of the file: see spoil()
    "wrong-type": [  # a value of the wrong type
        (rb"<cbc:IssueDate>\d{4}", rb"<cbc:IssueDate>20xx"),
        (rb"<ram:LineTotalAmount>[^<]*<", rb"<ram:LineTotalAmount>12,50 EUR<"),
    ],
}
BROKEN_RULE = "BR-CO-16"  # the business rule the XSD-valid broken flows break: amount due one cent off


def spoil(data: bytes, how: str) -> bytes:
    """An invalid variant (``how`` is a key of SPOILS): an unknown element, a missing mandatory one, a cut file, a
    value of the wrong type."""
    if how == "cut-short":
        return data[: len(data) * 2 // 3]
    for pattern, replacement in SPOILS[how]:
        spoiled = re.sub(pattern, replacement, data, count=1)
        if spoiled != data:
            return spoiled
    raise ValueError(f"spoil {how} does not apply")


def break_rule(data: bytes) -> bytes:
    """The invoice with its amount due (BT-115) one cent more than its total with VAT: still valid under the XSD,
    BR-CO-16 fires (and only it)."""
    pattern = rb"(<cbc:PayableAmount[^>]*>|<ram:DuePayableAmount>)([^<]*)<"
    broken, count = re.subn(
        pattern, lambda m: m.group(1) + _amount(Decimal(m.group(2).decode()) + CENT).encode() + b"<", data, count=1
    )
    assert count == 1, "no amount due"
    return broken


@dataclass(frozen=True, slots=True)
class Flow:
    """A generated flow: its file name, bytes, and how it is broken ("" when it is valid)."""

    name: str
    data: bytes
    broken: str  # "": valid under XSD and EN 16931; a key of SPOILS: the XSD rejects it; BROKEN_RULE: EN 16931 does


def flows(
    count: int, seed: int = 2026, invalid_every: int = 20, rule_every: int = 49, lines: int | None = None
) -> Iterator[Flow]:
    """``count`` flows. One in ``invalid_every`` is invalid under the XSD, made from every template in turn, spoilt in
    each way in turn; one in ``rule_every`` (never one of those) is valid under the XSD but breaks BROKEN_RULE; the
    others are valid. Each has ``lines`` lines, or a number drawn by :func:`line_count`."""
    rng = random.Random(seed)
    made = templates()
    kinds = list(SPOILS)
    for serial in range(count):
        invalid = serial % invalid_every == invalid_every - 1
        turn = serial // invalid_every
        template = made[turn % len(made)] if invalid else made[serial % len(made)]
        drawn = line_count(rng)
        data = invoice(template, serial, drawn if lines is None else lines)
        broken = ""
        if invalid:
            broken = kinds[turn % len(kinds)]
            data = spoil(data, broken)
        elif rule_every and serial % rule_every == rule_every // 2 - 1:
            broken = BROKEN_RULE
            data = break_rule(data)
        yield Flow(f"flow-{serial:07d}.xml", data, broken)


def write_flows(folder: Path, count: int, seed: int = 2026, lines: int | None = None) -> tuple[list[Path], int]:
    """Write ``count`` flows into ``folder`` (``lines``: each with that many lines, e.g. 1 for small invoices of
    4.8-6.8 KB); return their paths and total size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, total = [], 0
    for flow in flows(count, seed, lines=lines):
        path = folder / flow.name
        path.write_bytes(flow.data)
        paths.append(path)
        total += len(flow.data)
    return paths, total


def directory_without_rules(target: Path) -> Path:
    """The sample recipient directory with no recipient asking for extra rule sets (so ``rules`` alone decides
    which layers run), written to ``target``."""
    text = (FLOWS / "directory.toml").read_text(encoding="utf-8")
    target.write_text(re.sub(r"(?m)^rules = .*$", "", text), encoding="utf-8")
    return target
