"""Two revisions of notar measured against each other, interleaved in one session.

Each round runs every benchmark once from the base tree and once from the head tree (this one by
default), each with its own interpreter (`TREE/.venv/bin/python`) and its own working directory,
the order of the two swapped from round to round; it parses the throughput figures each run
prints, and reports per round the head ÷ base ratio of every figure with the load average around
the pair, then the median of the same-round ratios and their spread. A loaded, shared machine
slows both runs of a round alike, so the same-round ratio holds where the raw rates do not.

The benchmarks are the repository's own, run as their command lines (`loadtest.bench_sequencer`
and `loadtest.bench_api`), so a base tree from before a change needs nothing of this module.
Figures the two trees compute the same way (the plain hashlib loop, the aiohttp hello world) are
reported as controls: their ratio should be 1, and how far it strays is the noise.

    .venv/bin/python -m loadtest.compare_revisions --base ../baseline --rounds 6
    .venv/bin/python -m loadtest.compare_revisions --base ../baseline --benches sequencer \\
        --sequencer-args='--quick --stores fs,s3'

Bounded: each run by `--run-timeout`, the session by `--budget` (no round starts after it).
Nothing is written outside a temporary directory unless `--keep DIR` asks for every run's output.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHES = ("sequencer", "api")
DEFAULT_ARGS = {"sequencer": "--quick --stores fs", "api": "--quick --skip documents"}
MODULES = {"sequencer": "loadtest.bench_sequencer", "api": "loadtest.bench_api"}
_NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?)"
CPU_FIGURE = "whole run: CPU s (user + sys)"


@dataclass(frozen=True)
class Figure:
    """A figure of a benchmark run: `pattern` finds it in the run's table, `higher` says which way
    is better (throughput: higher; CPU per unit: lower), `control` marks a figure both trees
    compute with the same code."""

    name: str
    pattern: re.Pattern[str] | None
    """None: measured by this runner (the run's CPU time), not parsed."""
    higher: bool = True
    control: bool = False


def _row(label: str, contestant: str | None, column: int, unit: str = "") -> re.Pattern[str]:
    """The number in `column` (1 = the first after the label) of the Markdown table row whose
    first cell starts with `label` (and whose second is `contestant`, when given)."""
    cells = r"\|[^|\n]*" * (column - 1)
    who = "" if contestant is None else rf"\|\s*{re.escape(contestant)}[^|\n]*"
    return re.compile(rf"^\|\s*{re.escape(label)}[^|\n]*{who}{cells}\|\s*{_NUMBER}\s*{unit}", re.M)


FIGURES: dict[str, tuple[Figure, ...]] = {
    "sequencer": (
        Figure("fs: acknowledged entries/s", _row("sequencer, RocksDB + fs", None, 1)),
        Figure("fs: published entries/s", _row("sequencer, RocksDB + fs", None, 2)),
        Figure("S3: acknowledged entries/s", _row("sequencer, RocksDB + S3", None, 1)),
        Figure("plain hashlib loop, entries/s", _row("plain hashlib loop", None, 1), control=True),
        # The same fixed work in both trees (entries, rounds, open-loop schedule): the CPU time of
        # the whole benchmark process, sequencer, benchmark client and plain loop together.
        Figure(CPU_FIGURE, None, higher=False),
    ),
    "api": (
        Figure("bulk: digests/s", _row("bulk, closed loop", "notar serve", 1)),
        Figure("bulk: server CPU µs/digest", _row("bulk, closed loop", "notar serve", 5), higher=False),
        Figure("single: requests/s", _row("single digest, closed loop", "notar serve", 1)),
        Figure("proofs: proofs/s", _row("inclusion proofs", "notar serve", 1)),
        Figure("hello world: requests/s", _row("single digest, closed loop", "aiohttp hello world", 1),
               control=True),
    ),
}


def parse_figures(bench: str, output: str) -> dict[str, float]:
    """Every figure of `bench` that `output` holds (a benchmark leaves out what it skipped)."""
    found: dict[str, float] = {}
    for fig in FIGURES[bench]:
        m = None if fig.pattern is None else fig.pattern.search(output)
        if m is not None:
            found[fig.name] = float(m.group(1).replace(",", ""))
    return found


@dataclass(frozen=True)
class Tree:
    name: str
    root: Path
    python: Path


@dataclass
class Run:
    figures: dict[str, float]
    seconds: float
    load: tuple[float, float]
    """The 1-minute load average before and after the run."""


@dataclass
class Round:
    number: int
    bench: str
    order: tuple[str, str]
    runs: dict[str, Run] = field(default_factory=dict)

    def ratio(self, name: str) -> float | None:
        base, head = self.runs["base"].figures.get(name), self.runs["head"].figures.get(name)
        return head / base if base and head is not None else None

    @property
    def load(self) -> tuple[float, float]:
        loads = [x for r in self.runs.values() for x in r.load]
        return min(loads), max(loads)


class RunFailed(Exception):
    """A benchmark run that failed, timed out or printed none of its figures."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_bench(tree: Tree, bench: str, args: Sequence[str], timeout: float, keep: Path | None,
              tag: str) -> Run:
    """One benchmark run from `tree`; RunFailed with its output's tail when it fails. Runs are
    sequential, so the growth of this process's children's CPU time is this run's (with the
    servers it started and waited for)."""
    command = [str(tree.python), "-m", MODULES[bench], *args]
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu()
    start = time.monotonic()
    try:
        out = subprocess.run(command, cwd=tree.root, capture_output=True, text=True, timeout=timeout,
                             check=False, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except subprocess.TimeoutExpired:
        raise RunFailed(f"{shlex.join(command)} in {tree.root} ran over {timeout:.0f} s") from None
    seconds = time.monotonic() - start
    cpu = _children_cpu() - cpu_before
    if keep is not None:
        (keep / f"{tag}.out").write_text(out.stdout + "\n--- stderr\n" + out.stderr)
    if out.returncode != 0:
        raise RunFailed(f"{shlex.join(command)} in {tree.root} failed ({out.returncode}):\n"
                        f"{(out.stdout + out.stderr)[-3000:]}")
    figures = parse_figures(bench, out.stdout)
    if not figures:
        raise RunFailed(f"no figures in the output of {shlex.join(command)} in {tree.root}:\n"
                        f"{out.stdout[-3000:]}")
    if any(f.name == CPU_FIGURE for f in FIGURES[bench]):
        figures[CPU_FIGURE] = cpu
    return Run(figures, seconds, (load_before, os.getloadavg()[0]))


def session(trees: dict[str, Tree], benches: Sequence[str], bench_args: dict[str, list[str]], *,
            rounds: int, budget: float, run_timeout: float, keep: Path | None,
            log: Callable[[str], None], head_args: dict[str, list[str]] | None = None) -> list[Round]:
    """`rounds` rounds (fewer once `budget` seconds are spent, or after a failed run), each every
    bench from both trees, the tree that goes first alternating by round; `head_args` are added
    to the head's runs only (a setting the base does not have). Only complete pairs count."""
    done: list[Round] = []
    start = time.monotonic()
    for r in range(rounds):
        order = ("base", "head") if r % 2 == 0 else ("head", "base")
        for bench in benches:
            rnd = Round(r + 1, bench, order)
            for who in order:
                try:
                    args = [*bench_args[bench], *(head_args or {}).get(bench, [])] if who == "head" \
                        else bench_args[bench]
                    run = run_bench(trees[who], bench, args, run_timeout, keep, f"round{r + 1}-{bench}-{who}")
                except RunFailed as e:
                    log(f"round {r + 1} {bench} {who}: {e}\nstopping after {len(done)} complete pairs")
                    return done
                rnd.runs[who] = run
                shown = ", ".join(f"{k} {v:,.2f}" for k, v in run.figures.items())
                log(f"round {r + 1} {bench} {who}: {shown} ({run.seconds:.0f} s, load "
                    f"{run.load[0]:.1f} → {run.load[1]:.1f})")
            done.append(rnd)
        if time.monotonic() - start > budget and r + 1 < rounds:
            log(f"time budget of {budget:.0f} s spent after {r + 1} rounds; stopping")
            break
    return done


def summarize(rounds: Sequence[Round], name: str) -> tuple[float, float, float, int] | None:
    """The median, least and greatest of figure `name`'s same-round ratios (head ÷ base) and how
    many rounds have one; None when none has."""
    ratios = [q for r in rounds if (q := r.ratio(name)) is not None]
    if not ratios:
        return None
    return statistics.median(ratios), min(ratios), max(ratios), len(ratios)


def report(done: Sequence[Round], benches: Sequence[str]) -> str:
    lines: list[str] = []
    for bench in benches:
        rounds = [r for r in done if r.bench == bench]
        names = [f.name for f in FIGURES[bench] if any(r.ratio(f.name) is not None for r in rounds)]
        if not rounds or not names:
            continue
        columns = " | ".join(f"{n}: base → head (ratio)" for n in names)
        lines += [f"### {MODULES[bench]}", "", f"| round | first | load (1 min, min–max) | {columns} |",
                  "|---|---|---|" + "---|" * len(names)]
        for r in rounds:
            cells = []
            for n in names:
                b, h, q = r.runs["base"].figures.get(n), r.runs["head"].figures.get(n), r.ratio(n)
                cells.append("—" if q is None else f"{_num(b)} → {_num(h)} ({q:.3f})")
            lines.append(f"| {r.number} | {r.order[0]} | {r.load[0]:.1f}–{r.load[1]:.1f} | "
                         + " | ".join(cells) + " |")
        lines += ["", "| figure | median of same-round ratios (head ÷ base) | min–max | rounds | "
                  "what it means |", "|---|---|---|---|---|"]
        for fig in FIGURES[bench]:
            summary = summarize(rounds, fig.name)
            if summary is None:
                continue
            med, low, high, count = summary
            if fig.control:
                meaning = "control: the same code in both trees, its distance from 1 is noise"
            elif fig.higher:
                meaning = f"head costs {1 - med:.1%} of throughput" if med <= 1 else \
                    f"head is {med - 1:.1%} faster"
            else:
                meaning = f"head uses {abs(med - 1):.1%} {'more' if med > 1 else 'less'} of this per unit"
            lines.append(f"| {fig.name} | {med:.3f} | {low:.3f}–{high:.3f} | {count} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def tree(name: str, root: Path, python: Path | None) -> Tree:
    root = root.resolve()
    py = python or root / ".venv" / "bin" / "python"
    if not (root / "loadtest").is_dir() or not py.exists():
        raise SystemExit(f"--{name}: {root} is not a notar tree with an interpreter at {py} "
                         "(run scripts/install --test there, or give --{name}-python)")
    return Tree(name, root, py)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="the tree to compare against (a worktree)")
    p.add_argument("--head", type=Path, default=REPO, help="the tree measured (default: this one)")
    p.add_argument("--base-python", type=Path, help="default BASE/.venv/bin/python")
    p.add_argument("--head-python", type=Path, help="default HEAD/.venv/bin/python")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--benches", default=",".join(BENCHES), help="comma-separated: sequencer, api")
    p.add_argument("--sequencer-args", default=DEFAULT_ARGS["sequencer"],
                   help=f"arguments of loadtest.bench_sequencer (default {DEFAULT_ARGS['sequencer']!r})")
    p.add_argument("--api-args", default=DEFAULT_ARGS["api"],
                   help=f"arguments of loadtest.bench_api (default {DEFAULT_ARGS['api']!r})")
    p.add_argument("--budget", type=float, default=3600.0,
                   help="no round starts after this many seconds (default 3600)")
    p.add_argument("--head-sequencer-args", default="",
                   help="more arguments for the head's sequencer runs only, e.g. '--repeats-max 0'")
    p.add_argument("--head-api-args", default="",
                   help="more arguments for the head's api runs only (the last --skip wins), e.g. "
                   "'--skip bulk single proofs documents --answers default' against a base from before "
                   "the compact answer")
    p.add_argument("--run-timeout", type=float, default=900.0, help="seconds per run at most (default 900)")
    p.add_argument("--keep", type=Path, help="write every run's output into this directory")
    args = p.parse_args(argv)
    args.benches = tuple(b for b in args.benches.split(",") if b)
    if not args.benches or set(args.benches) - set(BENCHES):
        p.error(f"--benches takes a comma-separated subset of {', '.join(BENCHES)}")
    if not 1 <= args.rounds <= 100 or args.budget <= 0 or args.run_timeout <= 0:
        p.error("--rounds must be 1..100, --budget and --run-timeout positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    trees = {"base": tree("base", args.base, args.base_python),
             "head": tree("head", args.head, args.head_python)}
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    bench_args = {"sequencer": shlex.split(args.sequencer_args), "api": shlex.split(args.api_args)}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def describe(t: Tree) -> str:
        rev = subprocess.run(["git", "-C", str(t.root), "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True, check=False).stdout.strip()
        return f"{t.name}: {t.root} ({rev[:90] or 'not a git tree'})"

    load_before = os.getloadavg()
    done = session(trees, args.benches, bench_args, rounds=args.rounds, budget=args.budget,
                   run_timeout=args.run_timeout, keep=args.keep, log=log,
                   head_args={"sequencer": shlex.split(args.head_sequencer_args),
                              "api": shlex.split(args.head_api_args)})
    from loadtest.bench_merkle import machine

    print(f"Machine: {machine()}")
    print("Load average (1, 5, 15 min) at the start: {:.2f} {:.2f} {:.2f}, at the end: "
          "{:.2f} {:.2f} {:.2f}".format(*load_before, *os.getloadavg()))
    for t in trees.values():
        print(describe(t))
    for bench in args.benches:
        print(f"{bench}: python -m {MODULES[bench]} {shlex.join(bench_args[bench])}")
        head_only = {"sequencer": args.head_sequencer_args, "api": args.head_api_args}[bench]
        if head_only:
            print(f"  head only: {head_only}")
    print(f"{len({r.number for r in done})} rounds, the first tree alternating by round.\n")
    print(report(done, args.benches))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
