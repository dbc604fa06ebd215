"""Bronze ingestion: one parser per source format, one exactly-once job over all of them."""
