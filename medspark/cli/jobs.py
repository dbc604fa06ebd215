"""Shared body of the ``jobs/*.py`` spark-submit entry points: ``jobs/<name>.py ARGS`` = ``medspark <name> ARGS``.

Global options (``--config``, ``--set``, ``--lakehouse``, ``--verbose``) may appear anywhere in ARGS, as is
natural on a spark-submit line; they are moved in front of the command before parsing.
"""

from __future__ import annotations

from collections.abc import Sequence

from medspark.cli.main import main

_GLOBAL_WITH_VALUE = {"--config", "--set", "--lakehouse"}


def run_job(command: str, argv: Sequence[str]) -> int:
    """Run ``medspark <command>`` with ``argv`` (global options anywhere)."""
    global_args: list[str] = []
    command_args: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        token = items[i]
        name = token.split("=", 1)[0]
        if name in _GLOBAL_WITH_VALUE:
            if "=" in token:
                global_args.append(token)
            else:
                global_args.extend(items[i : i + 2])
                i += 1
        elif token == "--verbose":
            global_args.append(token)
        else:
            command_args.append(token)
        i += 1
    return main([*global_args, command, *command_args])
