"""Synthea CSV export -> bronze ``synthea_*`` tables (the format is ``parse.FORMAT``, name ``synthea-csv``)."""
