"""Reading and writing: source files, Delta tables, the run log and the ingest ledger."""
