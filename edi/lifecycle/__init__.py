"""Lifecycle messages: the reform's CDAR D22B statuses for the documents edi decides on (built, then checked)."""
