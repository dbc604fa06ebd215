"""FHIR R4 ingestion: bulk-export NDJSON and JSON documents (Bundles) into the ``fhir_*`` bronze entities.

``parse`` holds the two source formats (``FORMAT_NDJSON``, ``FORMAT_BUNDLE``), ``resources`` the resource parser
they share, ``bundle`` the file unpacking, ``sniff`` the content-based recognition, ``schemas`` every schema.
"""
