"""The typed error tree: the CLI maps each branch to an exit code and a one-line, value-free message."""

from __future__ import annotations


class MedsparkError(Exception):
    """Base of every error medspark raises on purpose."""

    exit_code = 1


class UsageError(MedsparkError):
    """A bad argument, path or option given by the user (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """Configuration that does not validate: unknown key, wrong type, missing value (exit code 2)."""


class PrivacyKeyError(ConfigError):
    """The pseudonymisation or encryption key is missing, unreadable or too weak (the message never holds it)."""


class EnvironmentProblem(MedsparkError):
    """The machine lacks something medspark needs (Java, the Delta JARs, a reachable repository)."""

    exit_code = 2


class SourceError(MedsparkError):
    """A source cannot be read as a whole (not a single record: those are quarantined)."""


class DataQualityError(MedsparkError):
    """A data-quality gate failed: the table stays at its previous version."""


class ConcurrentRunError(MedsparkError):
    """Another run holds the lakehouse or a table changed under this run (exit code 3: try again later)."""

    exit_code = 3
