"""Device vitals (JSON Lines, PhysioNet 2012 long CSV) -> bronze ``device_vitals`` (``parse.FORMAT``)."""
