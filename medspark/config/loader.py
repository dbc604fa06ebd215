"""Load configuration: base.yaml < profile < MEDSPARK_* environment < --set KEY=VALUE < --lakehouse.

Every failure is a :class:`ConfigError` with one line naming the key, never the YAML parser's traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from medspark.config.model import MedsparkConfig
from medspark.errors import ConfigError

ENV_PREFIX = "MEDSPARK_"
# Environment variables that are not configuration keys (secrets and locators).
RESERVED_ENV = {
    "MEDSPARK_PSEUDONYM_KEY",
    "MEDSPARK_CONF_DIR",
    "MEDSPARK_PROFILE",
    "MEDSPARK_SHARED_DATA",
    "MEDSPARK_TEST_KILL_AT",
    "MEDSPARK_REQUIRE_AIRFLOW",  # set by `make test`: the Airflow DAG test fails instead of skipping
    "MEDSPARK_CLUSTER_TEST",  # set by `make test-cluster`: run the standalone-cluster test
}
PROFILES = ("local", "test", "cluster")
# Keys whose value is a free-form map: the rest of a dotted --set path is one key (Spark keys have dots).
_MAP_KEYS = {("spark", "conf")}


def conf_dir() -> Path | None:
    """Where the YAML profiles live, the first that holds ``base.yaml`` of: $MEDSPARK_CONF_DIR, ./conf, the conf/
    beside the package's source checkout, and the conf/ beside the ``jobs/`` folder of the running job file (under
    spark-submit medspark may be imported from a ``--py-files`` archive, which holds no conf/)."""
    candidates = [os.environ.get("MEDSPARK_CONF_DIR"), "conf", str(Path(__file__).resolve().parents[2] / "conf")]
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.suffix == ".py" and script.resolve().parent.name == "jobs":
        candidates.append(str(script.resolve().parents[1] / "conf"))
    for candidate in candidates:
        if candidate and (Path(candidate) / "base.yaml").is_file():
            return Path(candidate)
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_path(target: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    parts = [p for p in dotted.split(".")]
    if not dotted or any(not p for p in parts):
        raise ConfigError(f"{origin}: '{dotted}' is not a valid key")
    for prefix in _MAP_KEYS:
        if tuple(parts[: len(prefix)]) == prefix and len(parts) > len(prefix):
            parts = [*prefix, ".".join(parts[len(prefix) :])]
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        _set_path(out, dotted, _parse_scalar(value), f"environment variable {name}")
    return out


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown config key '{where}'"
    if kind == "missing":
        return f"missing required config value '{where}'"
    return f"config key '{where}': {err['msg']}"


def load_config(
    config: str | None = None,
    *,
    overrides: Sequence[str] = (),
    lakehouse: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> MedsparkConfig:
    """Build the run's configuration.

    Args:
        config: a profile name (``local``, ``test``, ``cluster``) or a YAML file path; default
            ``$MEDSPARK_PROFILE`` or ``local``.
        overrides: ``KEY=VALUE`` strings from ``--set`` (dotted keys, YAML scalar values).
        lakehouse: the ``--lakehouse`` flag, the last word on ``lakehouse``.
        environ: environment to read ``MEDSPARK_*`` overrides from (default ``os.environ``).

    Raises:
        ConfigError: unknown key, wrong type, missing value, unreadable or invalid file.
    """
    env = os.environ if environ is None else environ
    directory = conf_dir()
    raw: dict[str, Any] = _read_yaml(directory / "base.yaml") if directory else {}
    choice = config or env.get("MEDSPARK_PROFILE") or "local"
    path = Path(choice)
    if choice in PROFILES and not path.suffix:
        if directory is None or not (directory / f"{choice}.yaml").is_file():
            raise ConfigError(f"profile '{choice}' not found (no conf/{choice}.yaml; set MEDSPARK_CONF_DIR)")
        raw = _merge(raw, _read_yaml(directory / f"{choice}.yaml"))
        raw.setdefault("profile", choice)
    else:
        if not path.is_file():
            raise ConfigError(f"config '{choice}' is neither a profile ({', '.join(PROFILES)}) nor a file")
        raw = _merge(raw, _read_yaml(path))
    raw = _merge(raw, _env_overrides(env))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        _set_path(raw, key.strip(), _parse_scalar(value), "--set")
    if lakehouse:
        raw["lakehouse"] = lakehouse
    try:
        return MedsparkConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
