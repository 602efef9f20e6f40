"""Make the binary sample flows (Factur-X PDF, ZIP and tar.gz batches) from the XML samples beside them.

Run from the repository root when the XML samples change: ``.venv/bin/python flows/generate.py``. The PDFs are
made with the factur-x package (the XML is embedded as factur-x.xml with Factur-X XMP metadata) on top of a
one-page PDF written here; archives get fixed timestamps so that they only change when their members do.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

from facturx import generate_from_binary

FLOWS = Path(__file__).resolve().parent
STAMP = (2026, 11, 26, 9, 0, 0)


def renumber(path: str, old: str, new: str) -> bytes:
    """An XML sample with its invoice number (and every other mention of it) changed."""
    return (FLOWS / path).read_bytes().replace(old.encode(), new.encode())


def page(title: str) -> bytes:
    """A one-page PDF showing ``title``: the human-readable side of a Factur-X invoice."""
    text = f"BT /F1 18 Tf 72 770 Td ({title}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(text)).encode() + b" >>\nstream\n" + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def facturx(xml: bytes, title: str, attachments: dict[str, bytes] | None = None) -> bytes:
    """A Factur-X PDF carrying ``xml`` (and other embedded files)."""
    extra = {name: {"filedata": data} for name, data in (attachments or {}).items()}
    return bytes(generate_from_binary(page(title), xml, flavor="factur-x", lang="fr-FR", attachments=extra or None))


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, STAMP), data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def tar_gz_of(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1795683600, 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def main() -> None:
    """Write every binary sample."""
    cii = "acme/03-cii-invoice.xml"
    basic = "opdemat/01-initech-cii-basic.xml"
    delivery_note = "Bon de livraison BL-2026-0015 : 12 ramettes livrées le 20/11/2026.\n".encode()
    samples = {
        "acme/15-facturx-invoice.pdf": facturx(
            renumber(cii, "FA-2026-0002", "FA-2026-0015"),
            "Facture FA-2026-0015",
            {"bon-de-livraison.txt": delivery_note},
        ),
        "opdemat/03-batch-partial.zip": zip_of(
            {
                "lot-11-2026/IN-2026-0044.xml": renumber(basic, "IN-2026-0042", "IN-2026-0044"),
                "lot-11-2026/IN-2026-0045.pdf": facturx(
                    renumber(basic, "IN-2026-0042", "IN-2026-0045"), "Facture IN-2026-0045"
                ),
                "lot-11-2026/IN-2026-0046.xml": renumber("acme/10-schema-invalid.xml", "FA-2026-0010", "IN-2026-0046"),
            }
        ),
        "opdemat/04-batch.tar.gz": tar_gz_of(
            {
                "IN-2026-0047.xml": renumber(basic, "IN-2026-0042", "IN-2026-0047"),
                "IN-2026-0048.xml": renumber(basic, "IN-2026-0042", "IN-2026-0048"),
            }
        ),
    }
    for name, data in samples.items():
        (FLOWS / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
