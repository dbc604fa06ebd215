"""Loading the pseudonymisation key: from the environment or a key file, never a default, never echoed.

The key is a secret shared by every run that must produce the same pseudonyms, so it lives outside the
repository (``MEDSPARK_PSEUDONYM_KEY`` or a file the configuration names). Weak keys are refused early, on the
driver, with a one-line ``PrivacyKeyError`` that names where the key came from but never the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from medspark.errors import PrivacyKeyError

log = logging.getLogger(__name__)

DEFAULT_ENV_VAR = "MEDSPARK_PSEUDONYM_KEY"
MIN_KEY_BYTES = 32
MIN_DISTINCT_BYTES = 8

_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def load_key(
    *,
    env_var: str = DEFAULT_ENV_VAR,
    key_file: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> bytes:
    """The key material from ``environ[env_var]``, else from ``key_file``.

    Text keys are decoded as hex (64 or more hex digits), else base64 (standard or URL-safe, when it decodes to
    at least 32 bytes), else taken as the UTF-8 bytes of the text; surrounding whitespace is ignored. A key file
    that is not valid UTF-8 is taken as raw binary key material. An empty environment variable counts as unset.

    Args:
        env_var: environment variable holding the key.
        key_file: path of a file holding the key (from the configuration); used when the variable is unset.
        environ: the environment to read (injectable for tests).

    Returns:
        At least 32 bytes of key material with at least 8 distinct byte values.

    Raises:
        PrivacyKeyError: no key, an unreadable or empty key file, or a weak key. The message never holds the key.
    """
    text = environ.get(env_var, "").strip()
    if text:
        origin = f"environment variable {env_var}"
        material = _decode_text(text, origin)
    elif key_file:
        origin = f"key file {key_file}"
        material = _read_key_file(Path(key_file), origin)
    else:
        raise PrivacyKeyError(f"no pseudonym key: set the environment variable {env_var} or configure a key file")
    _check_strength(material, origin)
    return material


def derive_key(key: bytes, purpose: str) -> bytes:
    """A 32-byte subkey for ``purpose`` (HMAC-SHA256 of ``"medspark-key:" + purpose`` under ``key``).

    Distinct purposes give independent keys, so one secret can feed pseudonyms and, for instance, the AES key of
    the re-identification table without the two being interchangeable.
    """
    if not isinstance(key, bytes | bytearray) or not key:
        raise ValueError("key must be non-empty bytes")
    if not purpose:
        raise ValueError("purpose must be a non-empty string")
    return hmac.new(bytes(key), b"medspark-key:" + purpose.encode("utf-8"), hashlib.sha256).digest()


def _decode_text(text: str, origin: str) -> bytes:
    if _HEX.fullmatch(text):
        if len(text) % 2 == 0 and len(text) >= 2 * MIN_KEY_BYTES:
            return bytes.fromhex(text)
        raise PrivacyKeyError(
            f"weak pseudonym key in {origin}: a hex key needs at least {2 * MIN_KEY_BYTES} hex digits "
            f"(an even number), found {len(text)}"
        )
    if _BASE64.fullmatch(text) and len(text) % 4 == 0:
        altchars = b"-_" if ("-" in text or "_" in text) else None
        try:
            decoded = base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) >= MIN_KEY_BYTES:
            return decoded
    return text.encode("utf-8")


def _read_key_file(path: Path, origin: str) -> bytes:
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise PrivacyKeyError(f"cannot read {origin}: {exc.strerror or type(exc).__name__}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("pseudonym key file %s is accessible to group or others; chmod 600 it", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not text: raw binary key material (e.g. ``head -c 32 /dev/urandom``). Not chained: the decode error
        # quotes a byte of the key.
        return raw
    text = text.strip()
    if not text:
        raise PrivacyKeyError(f"no pseudonym key: {origin} is empty")
    return _decode_text(text, origin)


def _check_strength(material: bytes, origin: str) -> None:
    if len(material) < MIN_KEY_BYTES:
        raise PrivacyKeyError(
            f"weak pseudonym key in {origin}: {len(material)} bytes of key material, at least {MIN_KEY_BYTES} needed"
        )
    if len(set(material)) < MIN_DISTINCT_BYTES:
        raise PrivacyKeyError(
            f"weak pseudonym key in {origin}: fewer than {MIN_DISTINCT_BYTES} distinct byte values "
            "(use e.g. `openssl rand -hex 32`)"
        )
