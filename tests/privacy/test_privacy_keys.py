"""Key loading: hex/base64/raw/binary accepted; missing, unreadable and weak keys refused without echoing them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from medspark.errors import ConfigError, PrivacyKeyError
from medspark.privacy.keys import derive_key, load_key

KEY = bytes(range(100, 132))  # 32 distinct bytes
ENV = "MEDSPARK_PSEUDONYM_KEY"


def _refused(secret: str, match: str, **kwargs: object) -> PrivacyKeyError:
    with pytest.raises(PrivacyKeyError, match=match) as info:
        load_key(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    if secret:
        assert secret not in message
        assert info.value.__cause__ is None or secret not in str(info.value.__cause__)
    return info.value


def test_hex_key_from_environment() -> None:
    assert load_key(environ={ENV: KEY.hex().upper() + "\n"}) == KEY


def test_base64_keys_standard_and_url_safe() -> None:
    assert load_key(environ={ENV: base64.b64encode(KEY).decode()}) == KEY
    url_key = bytes(range(200, 240))
    encoded = base64.urlsafe_b64encode(url_key).decode()
    assert "-" in encoded or "_" in encoded
    assert load_key(environ={ENV: encoded}) == url_key


def test_raw_text_passphrase() -> None:
    phrase = "Four distinct words, plus 31 more!"
    assert load_key(environ={ENV: f"  {phrase} "}) == phrase.encode("utf-8")


def test_other_env_var_name() -> None:
    assert load_key(env_var="MEDSPARK_REID_KEY", environ={"MEDSPARK_REID_KEY": KEY.hex()}) == KEY


def test_environment_wins_over_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(bytes(range(1, 33)).hex())
    assert load_key(key_file=str(key_file), environ={ENV: KEY.hex()}) == KEY
    # An empty variable counts as unset: the file is used.
    assert load_key(key_file=str(key_file), environ={ENV: "  "}) == bytes(range(1, 33))


def test_key_file_text_and_binary(tmp_path: Path) -> None:
    text_file = tmp_path / "key.hex"
    text_file.write_text(KEY.hex() + "\n")
    assert load_key(key_file=str(text_file), environ={}) == KEY
    binary = bytes([0xFF, 0xFE]) + bytes(range(128, 160))
    binary_file = tmp_path / "key.bin"
    binary_file.write_bytes(binary)
    assert load_key(key_file=str(binary_file), environ={}) == binary


def test_missing_key_is_a_config_error() -> None:
    error = _refused("", "no pseudonym key: set the environment variable MEDSPARK_PSEUDONYM_KEY", environ={})
    assert isinstance(error, ConfigError)
    assert error.exit_code == 2


def test_missing_and_empty_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.key"
    _refused("", f"cannot read key file {missing}: No such file or directory", key_file=str(missing), environ={})
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    _refused("", "is empty", key_file=str(empty), environ={})


@pytest.mark.parametrize(
    ("secret", "match"),
    [
        ("ab" * 31, "a hex key needs at least 64 hex digits"),  # 31 bytes of hex
        ("0" * 64, "fewer than 8 distinct byte values"),  # 32 zero bytes
        (base64.b64encode(bytes(32)).decode(), "fewer than 8 distinct byte values"),
        ("hunter2-hunter2", "15 bytes of key material, at least 32 needed"),
        ("xyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxy", "fewer than 8 distinct byte values"),
    ],
)
def test_weak_keys_are_refused_without_echo(secret: str, match: str) -> None:
    _refused(secret, match, environ={ENV: secret})


def test_weak_key_in_file_names_the_file_not_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "weak.key"
    key_file.write_text("swordfish\n")
    _refused("swordfish", f"weak pseudonym key in key file {key_file}", key_file=str(key_file), environ={})


def test_derive_key_matches_hmac_and_separates_purposes() -> None:
    derived = derive_key(KEY, "reidentification-aes-256-gcm")
    assert derived == hmac.new(KEY, b"medspark-key:reidentification-aes-256-gcm", hashlib.sha256).digest()
    assert len(derived) == 32
    assert derive_key(KEY, "other") != derived
