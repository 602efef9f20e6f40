"""The HTTP deposit API: AFNOR XP Z12-013 Annex A "Flow Service" 1.3.0, served by ``edi serve`` (docs/api.md)."""
