"""Silver: every bronze source conformed to the OMOP Common Data Model v5.4, one person across sources."""
