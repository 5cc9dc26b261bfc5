"""Merkle benchmark: notar's merkle/ beside a plain hashlib loop and pymerkle 7, in one process.

Every round runs each implementation once, in an order that rotates from round to round, so a
noisy machine slows all of them alike; rates are medians over rounds and each ratio is the median
of the ratios measured within the same round. Every round also checks that all RFC 9162
implementations agree on the root and on the proofs, so the numbers compare equal work.

    .venv/bin/python -m loadtest.bench_merkle                 # 1M leaves, 5 rounds
    .venv/bin/python -m loadtest.bench_merkle --quick         # 20k leaves, 3 rounds
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, TypeVar

import pymerkle
from pymerkle import BaseMerkleTree, InmemoryTree, InvalidProof

from merkle import TileBuilder, TileId, Tree, inclusion_proof_from_tiles, verify_inclusion
from merkle.hashing import leaf_hashes
from merkle.proofs import inclusion_path
from merkle.tiles import TileSource

T = TypeVar("T")

# Metrics, in table order: (key, column title, unit counted).
METRICS = (
    ("build", "build: leaves/s", "leaves"),
    ("tree", "in-memory tree: leaves/s", "leaves"),
    ("proofs", "inclusion proofs/s", "proofs"),
    ("tile_proofs", "proofs from tiles/s", "proofs"),
    ("warm_tile_proofs", "proofs from tiles, warm TileSource/s", "proofs"),
    ("verify", "verifications/s", "verifications"),
)


# ---------------------------------------------------------------- the work, one function each


def make_entries(n: int, seed: int = 9162) -> list[bytes]:
    """`n` notar-shaped log entries: a sha256 multihash (34 bytes) then a 16-byte salt."""
    rng = random.Random(seed)
    return [b"\x12\x20" + rng.randbytes(48) for _ in range(n)]


def plain_root(entries: Sequence[bytes]) -> bytes:
    """The RFC 9162 root with nothing but hashlib: the reference point for CPython."""
    h = sha256
    level = [h(b"\x00" + e).digest() for e in entries]
    if not level:
        return h(b"").digest()
    while len(level) > 1:
        pairs = iter(level)
        up = [h(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        if len(level) % 2:
            up.append(level[-1])
        level = up
    return level[0]


@dataclass
class TiledLog:
    """What the sequencer produces: the root, the tiles as an object store would hold them."""

    size: int
    root: bytes
    tiles: dict[TileId, bytes]
    hashes: list[bytes]


def notar_build(entries: Sequence[bytes], batch: int = 4096) -> TiledLog:
    """Leaf hashes and tiles of `entries`, appended `batch` at a time as the sequencer does."""
    builder = TileBuilder()
    tiles: dict[TileId, bytes] = {}
    hashes: list[bytes] = []
    for start in range(0, len(entries), batch):
        chunk = leaf_hashes(entries[start : start + batch])
        for tile in builder.append(chunk):
            tiles[tile.id] = tile.data
        hashes.extend(chunk)
    return TiledLog(builder.size, builder.root(), tiles, hashes)


def notar_tree(entries: Sequence[bytes]) -> Tree:
    return Tree(leaf_hashes(entries))


def notar_proofs(tree: Tree, indices: Sequence[int]) -> list[list[bytes]]:
    prove = tree.inclusion_proof
    return [prove(i) for i in indices]


def notar_tile_proofs(log: TiledLog, indices: Sequence[int]) -> list[list[bytes]]:
    fetch = log.tiles.__getitem__
    return [inclusion_proof_from_tiles(i, log.size, fetch) for i in indices]


def notar_warm_tile_proofs(source: TileSource, size: int, indices: Sequence[int]) -> list[list[bytes]]:
    """Proofs through one long-lived TileSource, which keeps the inner levels of every tile read."""
    return [inclusion_path(source, i, size) for i in indices]


def notar_verify(
    leaves: Sequence[bytes], indices: Sequence[int], size: int, proofs: Sequence[list[bytes]], root: bytes
) -> int:
    """How many of the proofs verify (all of them, when the implementation is right)."""
    return sum(
        verify_inclusion(leaf, i, size, p, root) for leaf, i, p in zip(leaves, indices, proofs, strict=True)
    )


def pymerkle_build(entries: Sequence[bytes], *, secure: bool = True) -> Any:
    """pymerkle's InmemoryTree, which keeps every node so proofs read subtree roots off nodes.

    With `secure` (the default) it hashes exactly as RFC 9162 (0x00 leaf and 0x01 node prefixes);
    `disable_security` drops both prefixes, so its roots and proofs are not RFC 9162 ones.
    """
    tree = InmemoryTree("sha256", disable_security=not secure)
    tree.append_entries(entries)
    return tree


class ListTree(BaseMerkleTree):  # type: ignore[misc]
    """The list-backed tree of pymerkle's README: leaf hashes only, no interior nodes kept."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        super().__init__("sha256")

    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        self.hashes.append(digest)
        return len(self.hashes)

    def _get_leaf(self, index: int) -> bytes:
        return self.hashes[index - 1]

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        return self.hashes[offset : offset + width]

    def _get_size(self) -> int:
        return len(self.hashes)


def pymerkle_list_build(entries: Sequence[bytes]) -> ListTree:
    tree = ListTree()
    tree.append_entries(entries)
    return tree


def pymerkle_proofs(tree: Any, indices: Sequence[int]) -> list[Any]:
    """pymerkle proofs; its indices count from one and its path starts with the leaf itself."""
    prove = tree.prove_inclusion
    return [prove(i + 1) for i in indices]


def pymerkle_verify(
    leaves: Sequence[bytes],
    indices: Sequence[int],
    size: int,
    proofs: Sequence[Any],
    root: bytes,
    *,
    secure: bool = True,
) -> int:
    ok = 0
    for leaf, i, p in zip(leaves, indices, proofs, strict=True):
        try:
            pymerkle.verify_inclusion(leaf, root, p, index=i + 1, size=size, security=secure)
        except InvalidProof:
            continue
        ok += 1
    return ok


# ---------------------------------------------------------------- one round of each contestant


@dataclass
class Workload:
    entries: list[bytes]
    indices: list[int]
    slow_indices: list[int]
    batch: int
    tile_proofs: int
    """How many of `indices` to prove from cold tiles (a few hundred hashes each)."""
    clock: Callable[[], float] = time.process_time
    """CPU time of this process by default: on a shared machine it counts our work, not theirs."""
    root: bytes = b""
    """The plain loop's root, which every RFC 9162 contestant must reproduce."""
    proofs: list[list[bytes]] = field(default_factory=list)
    """notar's proofs for `indices`, which pymerkle's paths must match."""


Rates = dict[str, float]


def _timed(clock: Callable[[], float], fn: Callable[[], T]) -> tuple[T, float]:
    gc.collect()  # garbage left by the previous step is not this step's cost
    start = clock()
    out = fn()
    return out, clock() - start


def _agree(what: str, got: object, want: object) -> None:
    if got != want:
        raise SystemExit(f"bench_merkle: {what} disagrees with the plain hashlib loop; numbers withheld")


def run_plain(w: Workload) -> Rates:
    root, secs = _timed(w.clock, lambda: plain_root(w.entries))
    _agree("plain root", root, w.root or root)
    w.root = root
    return {"build": len(w.entries) / secs}


def run_notar(w: Workload) -> Rates:
    n, k = len(w.entries), len(w.indices)
    log, build_s = _timed(w.clock, lambda: notar_build(w.entries, w.batch))
    _agree("notar TileBuilder root", log.root, w.root)
    tree, tree_s = _timed(w.clock, lambda: notar_tree(w.entries))
    _agree("notar Tree root", tree.root(), w.root)
    proofs, proofs_s = _timed(w.clock, lambda: notar_proofs(tree, w.indices))
    cold = w.indices[: w.tile_proofs]
    tile_proofs, tile_s = _timed(w.clock, lambda: notar_tile_proofs(log, cold))
    _agree("notar proofs from tiles", tile_proofs, proofs[: len(cold)])
    source = TileSource(n, log.tiles.__getitem__)
    notar_warm_tile_proofs(source, n, w.indices)  # warm-up: read and hash every tile once
    warm_proofs, warm_s = _timed(w.clock, lambda: notar_warm_tile_proofs(source, n, w.indices))
    _agree("notar proofs from a warm TileSource", warm_proofs, proofs)
    leaves = [log.hashes[i] for i in w.indices]
    ok, verify_s = _timed(w.clock, lambda: notar_verify(leaves, w.indices, n, proofs, w.root))
    _agree("notar verifications", ok, k)
    w.proofs = proofs
    return {
        "build": n / build_s,
        "tree": n / tree_s,
        "proofs": k / proofs_s,
        "tile_proofs": len(cold) / tile_s,
        "warm_tile_proofs": k / warm_s,
        "verify": k / verify_s,
    }


def run_pymerkle(w: Workload, *, secure: bool = True) -> Rates:
    n, k = len(w.entries), len(w.indices)
    tree, build_s = _timed(w.clock, lambda: pymerkle_build(w.entries, secure=secure))
    root = tree.get_root()
    proofs, proofs_s = _timed(w.clock, lambda: pymerkle_proofs(tree, w.indices))
    if secure:
        _agree("pymerkle root", root, w.root)
        if w.proofs:
            _agree("pymerkle proofs", [p.path[1:] for p in proofs], w.proofs)
    leaves = [tree.get_leaf(i + 1) for i in w.indices]
    ok, verify_s = _timed(w.clock, lambda: pymerkle_verify(leaves, w.indices, n, proofs, root, secure=secure))
    _agree("pymerkle verifications", ok, k)
    return {"build": n / build_s, "tree": n / build_s, "proofs": k / proofs_s, "verify": k / verify_s}


def run_pymerkle_list(w: Workload) -> Rates:
    n = len(w.entries)

    def build() -> tuple[ListTree, bytes]:
        tree = pymerkle_list_build(w.entries)
        return tree, tree.get_root()  # the root is computed here, from the leaf hashes

    (tree, root), build_s = _timed(w.clock, build)
    _agree("pymerkle list-backend root", root, w.root)
    _, proofs_s = _timed(w.clock, lambda: pymerkle_proofs(tree, w.slow_indices))
    return {"build": n / build_s, "proofs": len(w.slow_indices) / proofs_s}


@dataclass(frozen=True)
class Contestant:
    name: str
    run: Callable[[Workload], Rates]


PLAIN = "plain hashlib loop (root only)"
NOTAR = "notar merkle/"
PYMERKLE = "pymerkle 7 InmemoryTree"
PYMERKLE_LIST = "pymerkle 7 list backend (README)"
PYMERKLE_INSECURE = "pymerkle 7 InmemoryTree, disable_security (not RFC 9162)"


def contestants(insecure: bool) -> list[Contestant]:
    out = [
        Contestant(PLAIN, run_plain),
        Contestant(NOTAR, run_notar),
        Contestant(PYMERKLE, run_pymerkle),
        Contestant(PYMERKLE_LIST, run_pymerkle_list),
    ]
    if insecure:
        out.append(Contestant(PYMERKLE_INSECURE, lambda w: run_pymerkle(w, secure=False)))
    return out


# ---------------------------------------------------------------- rounds, medians, report


@dataclass
class Results:
    rounds: list[dict[str, Rates]] = field(default_factory=list)

    def rate(self, name: str, metric: str) -> float | None:
        values = [r[name][metric] for r in self.rounds if metric in r.get(name, {})]
        return statistics.median(values) if values else None

    def spread(self, name: str, metric: str) -> tuple[float, float] | None:
        values = [r[name][metric] for r in self.rounds if metric in r.get(name, {})]
        return (min(values), max(values)) if values else None

    def ratio(self, a: str, metric_a: str, b: str, metric_b: str) -> float | None:
        """Median over rounds of a's rate / b's rate measured in the same round."""
        values = [
            r[a][metric_a] / r[b][metric_b]
            for r in self.rounds
            if metric_a in r.get(a, {}) and metric_b in r.get(b, {})
        ]
        return statistics.median(values) if values else None


def run_rounds(
    workload: Workload,
    field_: Sequence[Contestant],
    rounds: int,
    budget: float,
    log: Callable[[str], None] = lambda _: None,
) -> Results:
    """Run every contestant once per round in a rotating order; stop early past `budget` seconds."""
    results = Results()
    start = time.perf_counter()
    # The plain loop runs first in round one so that every other contestant is checked against it.
    run_plain(workload)
    for r in range(rounds):
        shift = r % len(field_)
        order = list(field_[shift:]) + list(field_[:shift])
        measured: dict[str, Rates] = {}
        for c in order:
            measured[c.name] = c.run(workload)
            log(f"round {r + 1}/{rounds}: {c.name} {_fmt_rates(measured[c.name])}")
        results.rounds.append(measured)
        if time.perf_counter() - start > budget and r + 1 < rounds:
            log(f"time budget of {budget:.0f}s spent after {r + 1} rounds; stopping")
            break
    return results


def _fmt_rates(rates: Rates) -> str:
    return ", ".join(f"{k}={v:,.0f}/s" for k, v in rates.items())


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _cell(res: Results, name: str, metric: str) -> str:
    rate, spread = res.rate(name, metric), res.spread(name, metric)
    if rate is None or spread is None:
        return "—"
    if len(res.rounds) == 1:
        return _num(rate)
    return f"{_num(rate)} ({_num(spread[0])}–{_num(spread[1])})"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def goals(res: Results) -> list[tuple[str, float | None, float]]:
    """(what, measured ratio, target) for each goal of issue 2 item 5, plus the honest extras."""
    return [
        ("build (tiles) ÷ plain hashlib loop", res.ratio(NOTAR, "build", PLAIN, "build"), 0.8),
        ("build (tiles) ÷ pymerkle InmemoryTree", res.ratio(NOTAR, "build", PYMERKLE, "build"), 4.0),
        (
            "build (tiles) ÷ pymerkle list backend (its fastest build)",
            res.ratio(NOTAR, "build", PYMERKLE_LIST, "build"),
            4.0,
        ),
        ("proofs (Tree) ÷ pymerkle InmemoryTree", res.ratio(NOTAR, "proofs", PYMERKLE, "proofs"), 10.0),
        (
            "proofs from tiles ÷ pymerkle InmemoryTree",
            res.ratio(NOTAR, "tile_proofs", PYMERKLE, "proofs"),
            10.0,
        ),
        (
            "proofs from a warm TileSource ÷ pymerkle InmemoryTree",
            res.ratio(NOTAR, "warm_tile_proofs", PYMERKLE, "proofs"),
            10.0,
        ),
        ("verifications ÷ pymerkle", res.ratio(NOTAR, "verify", PYMERKLE, "verify"), 0.0),
    ]


def report(res: Results, names: Sequence[str]) -> str:
    head = "| implementation | " + " | ".join(title for _, title, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_cell(res, name, m) for m, _, _ in METRICS) + " |")
    lines += ["", "| ratio (median of same-round ratios) | measured | goal | met |", "|---|---|---|---|"]
    for what, ratio, target in goals(res):
        met = "—" if ratio is None or not target else ("yes" if ratio >= target else "**no**")
        lines.append(f"| {what} | {_ratio(ratio)} | {f'≥ {target:g}×' if target else '—'} | {met} |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cores} cores ({model}), Python {platform.python_version()} "
        f"({platform.python_implementation()}, {ssl.OPENSSL_VERSION}), pymerkle {pymerkle.__version__}"
    )


def load() -> str:
    """The 1-minute load average: other work competing for the cores while we measure."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--leaves", type=int, help="tree size (default 1,000,000; --quick 20,000)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 3)")
    p.add_argument("--proofs", type=int,
                   help="proofs and verifications per round (default 20,000; --quick 2,000)")
    p.add_argument("--tile-proofs", type=int,
                   help="proofs per round from cold tiles, ~650 hashes each (default 2,000; --quick 500)")
    p.add_argument("--slow-proofs", type=int, default=100,
                   help="proofs per round from pymerkle's list backend, O(n) hashes each (default 100)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="time by this process's CPU time (default; robust on a shared machine) or wall clock")
    p.add_argument("--batch", type=int, default=4096, help="leaves per TileBuilder.append (default 4096)")
    p.add_argument("--budget", type=float, default=900.0,
                   help="no new round starts after this many seconds (default 900)")
    p.add_argument("--insecure", action="store_true",
                   help="also run pymerkle with disable_security (faster, but not RFC 9162 hashes)")
    p.add_argument("--quick", action="store_true", help="small sizes for a fast look")
    p.add_argument("--seed", type=int, default=9162)
    args = p.parse_args(argv)
    defaults = {
        "leaves": (1_000_000, 20_000),
        "rounds": (5, 3),
        "proofs": (20_000, 2_000),
        "tile_proofs": (2_000, 500),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("leaves", "rounds", "proofs", "tile_proofs", "slow_proofs", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.leaves > 1 << 24:
        p.error("--leaves is capped at 16,777,216 to keep the run bounded in memory and time")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rng = random.Random(args.seed)
    workload = Workload(
        entries=make_entries(args.leaves, args.seed),
        indices=[rng.randrange(args.leaves) for _ in range(args.proofs)],
        slow_indices=[rng.randrange(args.leaves) for _ in range(args.slow_proofs)],
        batch=args.batch,
        tile_proofs=min(args.tile_proofs, args.proofs),
        clock=time.process_time if args.clock == "cpu" else time.perf_counter,
    )
    field_ = contestants(args.insecure)
    load_before = load()
    res = run_rounds(workload, field_, args.rounds, args.budget, log)
    print(f"Machine: {machine()}; load average {load_before} before the run, {load()} after")
    print(
        f"Leaves: {args.leaves:,} (50-byte entries), rounds: {len(res.rounds)}, proofs per round: "
        f"{args.proofs:,} (cold tiles: {workload.tile_proofs:,}, list backend: {args.slow_proofs:,}), "
        f"TileBuilder batch: {args.batch:,}"
    )
    clock = "process CPU time" if args.clock == "cpu" else "wall clock"
    print(f"Rates by {clock}, medians over rounds (min–max in brackets).\n")
    print(report(res, [c.name for c in field_]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
