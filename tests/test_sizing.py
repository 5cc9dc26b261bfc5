"""loadtest/sizing.py measures a real (small) run correctly and scales it sensibly."""

from __future__ import annotations

from pathlib import Path

from loadtest.sizing import fmt_bytes, measure, report


async def test_measures_what_the_log_and_documents_really_write(tmp_path: Path) -> None:
    m = await measure(tmp_path, entries=3 * 256 + 10, batch=200, docs=2, doc_mib=4.5)
    assert m.entries == 778 and m.batches == 4  # 200, 200, 200, 178
    assert m.objects["tile level 0"] == m.objects["entry bundle"] == 3, "full tiles: entries // 256"
    assert m.objects["checkpoint"] == 1 and 1 <= m.writes["checkpoint"] <= m.batches + 1
    assert m.stored["tile level 0"] == 3 * 256 * 32, "a full tile is 256 hashes"
    assert m.writes["tile level 0 (partial)"] >= 1
    assert m.objects["document chunks"] == 4, "4 MiB + rest, each"
    assert m.objects["document manifests"] == 4, "each under its BLAKE3 and its SHA-256 name"
    assert m.rocksdb_bytes > 0 and m.doc_bytes == 2 * int(4.5 * 2**20)
    table = report(m, rate=100_000, documents_bytes=2**50, doc_mib=4.5, docs=2)
    assert "| tile level 0 | 33.3 M |" in table  # 8.64e9 entries a day × 3 full tiles / 778 entries
    assert "| anchor pods (logs) for 100 k entries/s" in table
    assert m.objects["frozen index file"] == 1 and m.objects["frozen index manifest.json"] == 1
    assert m.stored["frozen index file"] == 778 * 40 + 1 * 16, "40 B a row, a 16 B fence per 1024 rows"
    assert m.export_seconds > 0


async def test_scales_to_k_shards_each_frozen_in_turn(tmp_path: Path) -> None:
    m = await measure(tmp_path, entries=600, batch=100, docs=1, doc_mib=1)
    table = report(m, rate=100_000, documents_bytes=2**50, doc_mib=1, docs=1, shards=4, freeze_days=10)
    cells = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| ")
    ]
    rows = {c[0]: c[1:] for c in cells}
    assert "over 4 shards (given), 25 k entries/s each, frozen after 10 days" in table
    assert rows["checkpoint"][0] == "4"  # one per shard, replaced in place
    assert rows["checkpoints signed per day (one per batch per shard)"] == ["3.46 M"]  # 4 × 864,000
    rocks = m.rocksdb_bytes / 600
    volume = rows["anchor volume at most (one shard of 10 days, then frozen)"]
    assert volume == [fmt_bytes(rocks * 25_000 * 86_400 * 10)]
    assert rows["frozen index in the store per billion entries"][0].endswith("(40.0 B/entry measured)")
    assert rows["frozen index files per frozen shard (16.8 M rows each)"] == ["1,288"]  # 21.6 G rows / 2^24
    two = report(m, rate=100_000, documents_bytes=2**50, doc_mib=1, docs=1, shards=2, freeze_days=10)
    assert "| pods per shard | 1 anchor" in two and "over 2 shards" in two
