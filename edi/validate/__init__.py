"""Validation layers: the schema catalogue and XSD validation. Each returns findings, never raises on bad input."""
