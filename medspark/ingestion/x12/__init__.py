"""ANSI X12 837 claims (837P, 837I) to bronze: ``parse`` holds ``FORMAT`` and the Spark wrapper, ``claims`` the
pure-Python reader it runs on each file."""
