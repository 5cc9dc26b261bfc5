"""loadtest/sizing.py measures a real (small) run correctly and scales it sensibly."""

from __future__ import annotations

from pathlib import Path

from loadtest.sizing import measure, report


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
