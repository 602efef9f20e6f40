"""Realistic invoice flows for the benchmarks, made from the XML samples in ``flows/``.

Each flow is one invoice or credit note (UBL 2.1 or CII), with its own number and a number of lines drawn from a
long-tailed distribution (most invoices have a few lines, some have hundreds): files range from about 4 KB to about
1 MB. About 5 % are invalid in the ways senders get wrong: an element the schema does not allow, a missing mandatory
element, a file cut short, a date that is not a date. Deterministic for a given seed.

Reads the samples in ``flows/``; :func:`write_flows` writes files into a folder; raises OSError.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
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


def invoice(template: Template, serial: int, lines: int) -> bytes:
    """One invoice made from ``template``: number made unique with ``serial``, ``lines`` lines."""
    number = f"{template.number}-{serial:07d}"
    tag = template.line_id.split(">", 1)[0]
    body = "".join(
        template.line.replace(template.line_id, f"{tag}>{i}{tag.replace('<', '</')}>", 1) for i in range(1, lines + 1)
    )
    return (template.head + body + template.tail).replace(template.number, number).encode("utf-8")


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


SPOILS: list[list[tuple[bytes, bytes]]] = [  # (pattern, replacement): the first that matches is applied
    [  # an element the schema does not allow
        (rb"</cbc:IssueDate>", rb"</cbc:IssueDate><cbc:Unknown>1</cbc:Unknown>"),
        (rb"</ram:TypeCode>", rb"</ram:TypeCode><ram:Unknown>1</ram:Unknown>"),
    ],
    [  # a mandatory element missing
        (rb"<cbc:IssueDate>[^<]*</cbc:IssueDate>", b""),
        (rb"<udt:DateTimeString[^>]*>[^<]*</udt:DateTimeString>", b""),
    ],
    [(rb"(?s)\A.*", b"")],  # cut short: see spoil()
    [  # a value of the wrong type
        (rb"<cbc:IssueDate>\d{4}", rb"<cbc:IssueDate>20xx"),
        (rb"<ram:LineTotalAmount>[^<]*<", rb"<ram:LineTotalAmount>12,50 EUR<"),
    ],
]


def spoil(data: bytes, how: int) -> bytes:
    """An invalid variant: an unknown element, a missing mandatory one, a cut file, a value of the wrong type."""
    if how == 2:
        return data[: len(data) * 2 // 3]
    for pattern, replacement in SPOILS[how]:
        spoiled = re.sub(pattern, replacement, data, count=1)
        if spoiled != data:
            return spoiled
    raise ValueError(f"spoil {how} does not apply")


def flows(count: int, seed: int = 2026, invalid_every: int = 20) -> Iterator[tuple[str, bytes, bool]]:
    """``count`` flows: (file name, bytes, valid?). One in ``invalid_every`` is invalid, made from every template
    in turn, spoilt in each way in turn."""
    rng = random.Random(seed)
    made = templates()
    for serial in range(count):
        valid = serial % invalid_every != invalid_every - 1
        turn = serial // invalid_every
        template = made[serial % len(made)] if valid else made[turn % len(made)]
        data = invoice(template, serial, line_count(rng))
        if not valid:
            data = spoil(data, turn % len(SPOILS))
        yield f"flow-{serial:07d}.xml", data, valid


def write_flows(folder: Path, count: int, seed: int = 2026) -> tuple[list[Path], int]:
    """Write ``count`` flows into ``folder``; return their paths and total size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, total = [], 0
    for name, data, _ in flows(count, seed):
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
        total += len(data)
    return paths, total


def directory_without_rules(target: Path) -> Path:
    """The sample recipient directory with no recipient asking for extra rule sets (so ``rules`` alone decides
    which layers run), written to ``target``."""
    text = (FLOWS / "directory.toml").read_text(encoding="utf-8")
    target.write_text(re.sub(r"(?m)^rules = .*$", "", text), encoding="utf-8")
    return target
