"""edi: an EDI batch flow processor for e-invoices (UBL 2.1, UN/CEFACT CII, Factur-X).

``edi.__version__`` is read from the installed package's metadata when first asked for, not on import: importing
``importlib.metadata`` costs ~30 ms, paid by every command and every worker process otherwise.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("edi")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0"
    raise AttributeError(f"module 'edi' has no attribute {name!r}")
