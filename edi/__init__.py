"""edi: an EDI batch flow processor for e-invoices (UBL 2.1, UN/CEFACT CII, Factur-X)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edi")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
