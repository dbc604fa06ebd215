"""Operating the lakehouse: the lock, pipeline orchestration, maintenance and time travel."""
