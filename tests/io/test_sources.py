"""Source listing and line reading: exact 1-based line numbers even when Spark splits a file in blocks."""

from __future__ import annotations

import gzip
from pathlib import Path

from pyspark.sql import SparkSession

from medspark.ingestion.contract import SourceFile
from medspark.io.sources import list_files, one_file_per_partition, read_files, read_head, read_lines


def _source(path: Path) -> SourceFile:
    return SourceFile("file:" + str(path), path.stat().st_size, 0, "test")


def test_line_numbers_exact_across_blocks_and_odd_names(spark: SparkSession, tmp_path: Path) -> None:
    big = tmp_path / "a b+c [1]'s.txt"
    lines = [f"line {i:05d}" + "x" * (i % 7) for i in range(1, 801)]
    lines[9] = ""  # line 10 blank: not a record, numbering continues
    big.write_text("\n".join(lines) + "\n")
    small = tmp_path / "small.txt"
    small.write_text("only\n")
    zipped = tmp_path / "z.txt.gz"
    zipped.write_bytes(gzip.compress(b"g1\ng2\n\ng4\n"))
    files = [_source(big), _source(small), _source(zipped)]
    with one_file_per_partition(spark, 1024):  # ~12 blocks for the big file
        rows = read_lines(spark, files).collect()
    got = {(r["_source_file"], r["_record_position"]): r["_raw"] for r in rows}
    expected = {(files[0].path, i + 1): text for i, text in enumerate(lines) if text}
    expected[(files[1].path, 1)] = "only"
    expected.update({(files[2].path, 1): "g1", (files[2].path, 2): "g2", (files[2].path, 4): "g4"})
    assert got == expected
    assert len(rows) == len(expected)  # no line read twice at block boundaries


def test_list_files_skips_hidden_and_underscore(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.json").write_text("{}")
    (tmp_path / "_manifest").mkdir()
    (tmp_path / "_manifest" / "defects.jsonl").write_text("{}")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "_SUCCESS").write_text("")
    found = list_files(spark, str(tmp_path))
    assert [f.path.rsplit("/", 2)[-2:] for f in found] == [["d", "keep.json"]]
    assert found[0].path == "file:" + str(tmp_path / "d" / "keep.json")


def test_heads_and_whole_files(spark: SparkSession, tmp_path: Path) -> None:
    zipped = tmp_path / "x.json.gz"
    zipped.write_bytes(gzip.compress(b'{"resourceType": "Bundle"}'))
    plain = tmp_path / "msg.hl7"
    plain.write_bytes(b"MSH|^~\\&|A\r")
    assert read_head(spark, "file:" + str(zipped)) == b'{"resourceType": "Bundle"}'
    assert read_head(spark, str(plain), 3) == b"MSH"
    rows = read_files(spark, [_source(plain)]).collect()
    assert [(r["_source_file"], bytes(r["_content"])) for r in rows] == [("file:" + str(plain), b"MSH|^~\\&|A\r")]


def test_read_head_through_a_hadoop_filesystem(spark: SparkSession, viewfs: str, tmp_path: Path) -> None:
    # On a non-local filesystem the head comes through the JVM: bytes >= 0x80 must survive, and .gz be inflated.
    raw = bytes(range(256)) * 300
    (tmp_path / "viewfs" / "bin.dat").write_bytes(raw)
    (tmp_path / "viewfs" / "z.json.gz").write_bytes(gzip.compress(b'{"resourceType": "Bundle"}'))
    assert read_head(spark, viewfs + "/bin.dat") == raw[:65536]
    assert read_head(spark, viewfs + "/bin.dat", 5) == raw[:5]
    assert read_head(spark, viewfs + "/z.json.gz") == b'{"resourceType": "Bundle"}'
    assert [f.path for f in list_files(spark, viewfs)] == [viewfs + "/bin.dat", viewfs + "/z.json.gz"]
