"""Where generated records go: atomic files, defect injection on the way, counts and manifest rows per chunk.

A writer hands records to a :class:`RecordFile` in blocks; the file is written under a hidden temporary name
(``.<name>.tmp``, which the ingest job skips like every name starting with ``.``) and renamed into place only
when complete, so a killed run never leaves a half file under a final name. Files that end up with no record are
not created at all (bronze would otherwise see an empty file).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medspark.synthetic import textfmt as T
from medspark.synthetic.defects import ENCODING, ERRORS, Damage, Injector, Profile
from medspark.synthetic.population import Population

BLOCK_PATIENTS = 2000  # writers stream patients in blocks of this size (fixed: part of the deterministic output)


def temp_path(path: Path) -> Path:
    """The hidden temporary name a file is written under before its atomic rename."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    tmp = temp_path(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


@dataclass
class ChunkContext:
    """Per-chunk output state shared by the writers: where to write, defect settings and what was written."""

    out_dir: Path
    seed: int
    chunk: int
    defect_rate: float
    records: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    files: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def rng(self, stream: int) -> np.random.Generator:
        """An RNG for a writer's own draws (e.g. device noise), independent of the population's."""
        return np.random.default_rng([self.seed, self.chunk, 0x11417, stream])

    def injector(self, fmt: str, rel_path: str, profiles: dict[str, Profile], damage: Damage,
                 position_offset: int = 0) -> Injector:
        """A defect injector for one file."""
        return Injector(fmt=fmt, rel_path=rel_path, rate=self.defect_rate, profiles=profiles, damage=damage,
                        position_offset=position_offset, seed=self.seed, chunk=self.chunk)

    def count(self, fmt: str, rel_path: str, entities: Sequence[str]) -> None:
        """Record what a file holds (per bronze entity and per file)."""
        for entity, count in Counter(entities).items():
            self.records[fmt][entity] += count
        self.files[rel_path] = self.files.get(rel_path, 0) + len(entities)

    def add_events(self, injector: Injector) -> None:
        """Collect an injector's manifest rows once its file is complete."""
        self.events.extend(injector.events)


class RecordFile:
    """One output file of delimited records (lines, HL7 messages, MLLP frames), written atomically.

    Args:
        ctx: The chunk context.
        rel_path: Path relative to the output directory.
        fmt: Format name (manifest and counts).
        profiles: Record key -> profile (entity and possible defects).
        damage: Damage function for the profiles' defect kinds.
        header: Optional first line (not a record; shifts positions by one).
        prefix: Written before each record (MLLP start block).
        suffix: Written after each record (newline, or MLLP end block + carriage return).
    """

    def __init__(self, ctx: ChunkContext, rel_path: str, fmt: str, profiles: dict[str, Profile], damage: Damage, *,
                 header: str | None = None, prefix: str = "", suffix: str = "\n") -> None:
        self.ctx = ctx
        self.rel_path = rel_path
        self.fmt = fmt
        self.profiles = profiles
        self.path = ctx.out_dir / rel_path
        self.tmp = temp_path(self.path)
        self.prefix = prefix
        self.suffix = suffix
        self._suffix_bytes = suffix.encode(ENCODING)
        self.injector = ctx.injector(fmt, rel_path, profiles, damage, position_offset=1 if header else 0)
        self.written = 0
        self.handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()/__exit__
        if header is not None:
            self.handle.write((header + "\n").encode(ENCODING))

    def add(self, records: list[str], keys: Sequence[str] | str) -> None:
        """Append a block of records; ``keys`` is one key for the whole block or one per record."""
        if not records:
            return
        key_list = [keys] * len(records) if isinstance(keys, str) else list(keys)
        out, entities = self.injector.process(records, key_list)
        self._write(out, entities)

    def _write(self, records: list[str], entities: list[str]) -> None:
        if not records:
            return
        if self.prefix:
            self.handle.write("".join(f"{self.prefix}{r}{self.suffix}" for r in records).encode(ENCODING, ERRORS))
        else:
            self.handle.write(self.suffix.join(records).encode(ENCODING, ERRORS))
            self.handle.write(self._suffix_bytes)
        self.ctx.count(self.fmt, self.rel_path, entities)
        self.written += len(records)

    def close(self) -> bool:
        """Finish the file: end-of-file duplicates, rename into place (or drop it when empty)."""
        tail, tail_entities = self.injector.finish()
        self._write(tail, tail_entities)
        self.handle.close()
        if self.written == 0:
            self.tmp.unlink()
            return False
        os.replace(self.tmp, self.path)
        self.ctx.add_events(self.injector)
        return True

    def __enter__(self) -> RecordFile:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.handle.close()
            self.tmp.unlink(missing_ok=True)


def blocks(n: int, size: int = BLOCK_PATIENTS) -> Iterator[tuple[int, int]]:
    """Patient index ranges ``[a, b)`` in blocks."""
    for a in range(0, n, size):
        yield a, min(n, a + size)


class Strings:
    """Text renderings computed once per chunk and shared by writers (ids and timestamps of encounters)."""

    def __init__(self, pop: Population) -> None:
        self.pop = pop
        self._cache: dict[str, np.ndarray] = {}

    def _get(self, name: str, make: Callable[[], list[str]]) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = np.array(make(), dtype=object)
        return self._cache[name]

    @property
    def enc_uuid(self) -> np.ndarray:
        return self._get("enc_uuid", lambda: T.uuid_strings(self.pop.encounters.uuid))

    @property
    def enc_start_utc(self) -> np.ndarray:
        return self._get("enc_start_utc", lambda: T.iso_utc(self.pop.encounters.start))

    @property
    def enc_stop_utc(self) -> np.ndarray:
        return self._get("enc_stop_utc", lambda: T.iso_utc(self.pop.encounters.stop))

    @property
    def enc_start_local(self) -> np.ndarray:
        return self._get("enc_start_local", lambda: T.iso_local(self.pop.encounters.start))

    @property
    def enc_stop_local(self) -> np.ndarray:
        return self._get("enc_stop_local", lambda: T.iso_local(self.pop.encounters.stop))

    @property
    def enc_start_date(self) -> np.ndarray:
        return self._get("enc_start_date", lambda: T.iso_date(self.pop.encounters.start // T.DAY))

    @property
    def enc_visit(self) -> np.ndarray:
        return self._get("enc_visit", lambda: list(map(str, self.pop.encounters.visit.tolist())))

    @property
    def birth_date(self) -> np.ndarray:
        return self._get("birth_date", lambda: T.iso_date(self.pop.patients.birth_day))
