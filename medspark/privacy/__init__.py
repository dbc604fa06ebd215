"""Privacy: keyed pseudonyms, the restricted re-identification table, Safe-Harbour research views, leak scans.

Everything here is a pure transform or a driver-side helper; jobs decide what is read and written. Keys are
loaded once on the driver (``keys.load_key``) and reach executors only as literals inside column expressions.
See docs/privacy.md.
"""

from __future__ import annotations

from medspark.privacy.keys import derive_key, load_key
from medspark.privacy.pseudonym import hmac_sha256, pseudonymise, pseudonymous_id

__all__ = ["derive_key", "hmac_sha256", "load_key", "pseudonymise", "pseudonymous_id"]
