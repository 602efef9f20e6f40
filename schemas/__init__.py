"""edi's own schemas, installed as the ``edi.schemas`` package: the schema catalogue and the acknowledgement XSD."""
