"""HL7 v2 messages to bronze ``hl7v2_messages``: ``parse`` holds ``FORMAT`` (sniff, split, parse, quarantine),
``fields`` the HL7 field-path helpers (``hl7_field(segments, "PID-3[*].1")``) and DTM date conversion."""
