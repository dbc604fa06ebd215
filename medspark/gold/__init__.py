"""Gold: analysis-ready tables built from the de-identified research views (issue 4)."""
