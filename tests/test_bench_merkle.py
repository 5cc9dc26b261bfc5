"""The Merkle benchmark's contestants compute the same RFC 9162 roots and proofs (never timing)."""

from __future__ import annotations

import pytest

from loadtest import bench_merkle as bench
from merkle import root
from merkle.hashing import leaf_hashes
from merkle.tiles import TileSource
from tests.merkle.reference import ref_path, ref_root

SIZES = [1, 2, 3, 5, 255, 256, 257, 600]


@pytest.mark.parametrize("n", SIZES)
def test_all_implementations_agree_on_the_root(n: int) -> None:
    entries = bench.make_entries(n, seed=n)
    want = ref_root(leaf_hashes(entries))
    assert bench.plain_root(entries) == want
    assert bench.notar_build(entries, batch=100).root == want
    assert bench.notar_tree(entries).root() == want
    assert bench.pymerkle_build(entries).get_root() == want
    assert bench.pymerkle_list_build(entries).get_root() == want
    assert root(leaf_hashes(entries)) == want


def test_insecure_pymerkle_is_not_rfc9162() -> None:
    entries = bench.make_entries(8)
    assert bench.pymerkle_build(entries, secure=False).get_root() != bench.plain_root(entries)


@pytest.mark.parametrize("n", [1, 7, 256, 600])
def test_all_proofs_agree_and_verify(n: int) -> None:
    entries = bench.make_entries(n, seed=n)
    hashes = leaf_hashes(entries)
    indices = sorted({0, n // 3, n // 2, n - 1})
    log = bench.notar_build(entries, batch=64)
    tree = bench.notar_tree(entries)
    proofs = bench.notar_proofs(tree, indices)
    assert proofs == [ref_path(i, hashes) for i in indices]
    assert bench.notar_tile_proofs(log, indices) == proofs
    source = TileSource(n, log.tiles.__getitem__)
    assert bench.notar_warm_tile_proofs(source, n, indices) == proofs
    assert bench.notar_warm_tile_proofs(source, n, indices) == proofs
    pm = bench.pymerkle_build(entries)
    pm_proofs = bench.pymerkle_proofs(pm, indices)
    assert [p.path[1:] for p in pm_proofs] == proofs
    assert [p.path[1:] for p in bench.pymerkle_proofs(bench.pymerkle_list_build(entries), indices)] == proofs
    leaves = [hashes[i] for i in indices]
    assert bench.notar_verify(leaves, indices, n, proofs, log.root) == len(indices)
    assert bench.pymerkle_verify(leaves, indices, n, pm_proofs, log.root) == len(indices)
    wrong = bytes(32)
    assert bench.notar_verify(leaves, indices, n, proofs, wrong) == 0
    assert bench.pymerkle_verify(leaves, indices, n, pm_proofs, wrong) == 0


def test_a_tiny_run_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--quick", "--leaves", "300", "--rounds", "2", "--proofs", "20", "--slow-proofs", "5"]
    args.append("--insecure")
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    for name in (bench.PLAIN, bench.NOTAR, bench.PYMERKLE, bench.PYMERKLE_LIST, bench.PYMERKLE_INSECURE):
        assert f"| {name} |" in out
    assert "| build (tiles) ÷ plain hashlib loop |" in out


def test_a_contestant_that_disagrees_stops_the_run() -> None:
    w = bench.Workload(entries=bench.make_entries(10), indices=[1], slow_indices=[1], batch=4, tile_proofs=1)
    w.root = bytes(32)
    with pytest.raises(SystemExit, match="disagrees"):
        bench.run_notar(w)


@pytest.mark.parametrize("bad", [["--leaves", "0"], ["--rounds", "0"], ["--leaves", str((1 << 24) + 1)]])
def test_bad_flags_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(bad)
