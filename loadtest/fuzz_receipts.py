"""Fuzzing receipts: crafted receipts, notes, anchors and exports against the verifier and parsers,
bounded in executions and time. Targets and oracle: loadtest/fuzz_targets.py, fuzz_oracle.py.

    .venv/bin/python -m loadtest.fuzz_receipts --engine hypothesis --runs 20000 --seconds 600
    .venv/bin/python -m loadtest.fuzz_receipts --engine atheris --runs 2000000 --seconds 1200
    .venv/bin/python -m loadtest.fuzz_receipts --engine atheris --target anchors --seconds 60

`--runs` and `--seconds` bound each target group; with several groups the seconds are shared out.
atheris (libFuzzer, coverage-guided over the packages of --instrument, by default merkle/ and
asn1crypto) mutates bytes from the seeds and the saved inputs of tests/fuzz/corpus/<group>/, each
group in a child process with a dictionary of receipt words; Hypothesis mutates structure
(loadtest/fuzz_mutations.py). Exit status 0 when nothing was found, 1 otherwise; crashing inputs
and the children's logs (libFuzzer's cov/ft figures) go to --artifacts. A crashing input that is
worth keeping goes to tests/fuzz/corpus/<group>/, which the tests replay.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GROUPS = ("receipt", "note", "anchors", "export", "statement")
DICTIONARY = [
    '"format"',
    '"notar.receipt.v2"',
    '"notar.receipt.v1"',
    '"digest"',
    '"salt"',
    '"subject"',
    '"aggregate"',
    '"size"',
    '"path"',
    '"entry"',
    '"log"',
    '"origin"',
    '"index"',
    '"tree_size"',
    '"inclusion"',
    '"checkpoint"',
    '"anchors"',
    '"type"',
    '"local"',
    '"rfc3161"',
    '"evm"',
    '"token"',
    '"root"',
    '"sig"',
    '"height"',
    '"prev"',
    '"time"',
    '"tx_hash"',
    '"block_number"',
    '"block_hash"',
    '"chain_id"',
    '"contract"',
    '"blake3:"',
    '"sha256:"',
    '"0x"',
    '"\\xe2\\x80\\x94 "',
    '"\\x0a\\x0a"',
    '"\\\\u0000"',
    '"\\\\ud800"',
    '"\\\\n"',
    '"9223372036854775807"',
    '"18446744073709551616"',
    '"-1"',
    '".0"',
    '"e0"',
    '"true"',
    '"null"',
    '"[]"',
    '"{}"',
    '"notar.aggregate.v1"',
    '"c2sp.org/tlog-proof@v1"',
    '"extra "',
    '"index "',
    '"\\x30\\x82"',
    '"\\x31\\x82"',
    '"\\xa0\\x82"',
]


@dataclass
class Outcome:
    target: str
    executions: int
    seconds: float
    found: list[str]
    coverage: str = ""


# -- Hypothesis -----------------------------------------------------------------------------------


def hypothesis_strategies(targets: Any, seeds: Any) -> dict[str, Any]:
    """Per target group, a strategy of thunks: each runs one structure-aware mutant through its
    target (a Targets method)."""
    from hypothesis import strategies as st

    from loadtest import fuzz_mutations as fm

    notes = [n.encode() for n in seeds.notes]
    keys = [k.encode() for k in seeds.keys]
    return {
        "receipt": st.one_of(
            st.tuples(
                fm.mutated_receipts(seeds),
                st.none() | st.sampled_from([r["digest"] for r in seeds.receipts]),
            ).map(lambda rd: lambda: targets.receipt(rd[0], rd[1])),
            fm.any_json_in_a_member(seeds).map(lambda data: lambda: targets.receipt_bytes(data)),
        ),
        "note": st.one_of(
            fm.mutated_notes(seeds).map(lambda n: lambda: targets.note(n)),
            fm.mutated_bytes(notes).map(lambda b: lambda: targets.note(b)),
            fm.mutated_text(seeds.keys).map(lambda k: lambda: targets.key(k)),
            fm.mutated_bytes(keys).map(lambda b: lambda: targets.key(b.decode("utf-8", "replace"))),
        ),
        "anchors": st.one_of(
            fm.mutated_bytes(list(targets.tokens), 4).map(lambda b: lambda: targets.token(b)),
            fm.mutated_bytes([_b64d(r) for r in seeds.tsa_responses], 4).map(
                lambda b: lambda: targets.tsa_response(b)
            ),
            fm.mutated_json([a for recs in seeds.anchors.values() for a in recs]).map(
                lambda r: lambda: targets.anchor_record(r)
            ),
            fm.mutated_json(list(seeds.chain["receipts"].values())).map(
                lambda r: lambda: targets.chain_answer(r)
            ),
        ),
        "export": st.one_of(
            fm.mutated_text(seeds.tlog_proofs).map(lambda t: lambda: targets.tlog_proof(t)),
            fm.mutated_bytes([_b64d(c) for c in seeds.cose]).map(lambda b: lambda: targets.cose(b)),
            fm.mutated_cose([_b64d(c) for c in seeds.cose]).map(lambda b: lambda: targets.cose(b)),
        ),
        "statement": st.one_of(
            fm.mutated_bytes([_b64d(b) for b in seeds.statements]).map(
                lambda b: lambda: targets.statement(b)
            ),
            fm.mutated_statements([_b64d(b) for b in seeds.statements]).map(
                lambda b: lambda: targets.statement(b)
            ),
        ),
    }


def hypothesis_group(
    group: str, targets: Any, seeds: Any, *, runs: int, seconds: float, chunk: int = 200
) -> Outcome:
    """Run one group's structure-aware properties in chunks of `chunk` examples until `runs`
    executions or `seconds` have passed; stops at the first finding (already shrunk)."""
    from hypothesis import HealthCheck, given, settings

    strategy = hypothesis_strategies(targets, seeds)[group]

    @settings(
        max_examples=min(chunk, runs),
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(run: Any) -> None:
        run()

    start, before = time.monotonic(), targets.executions
    found: list[str] = []
    while targets.executions - before < runs and time.monotonic() - start < seconds:
        try:
            prop()
        except Exception:  # a finding: Hypothesis has shrunk it and printed the falsifying example
            found.append(traceback.format_exc(limit=-8))
            break
    return Outcome(group, targets.executions - before, time.monotonic() - start, found)


def _b64d(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


# -- atheris --------------------------------------------------------------------------------------


def atheris_child(group: str, seeds_file: Path, instrument: list[str], libfuzzer_args: list[str]) -> None:
    """Runs in its own process: instrument `instrument` (packages), then let libFuzzer drive."""
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=instrument):
        from loadtest.fuzz_seeds import Seeds
        from loadtest.fuzz_targets import Targets, byte_targets, run_bytes

    targets = Targets(Seeds.from_json(json.loads(seeds_file.read_text())))
    chosen = byte_targets(targets)[group]

    def one_input(data: bytes) -> None:
        run_bytes(chosen, data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


_STATS = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+)")


def atheris_group(
    group: str,
    seeds_file: Path,
    work: Path,
    artifacts: Path,
    *,
    runs: int,
    seconds: float,
    instrument: str = "merkle,asn1crypto",
) -> Outcome:
    from loadtest.fuzz_seeds import Seeds
    from loadtest.fuzz_targets import byte_seeds

    corpus = work / f"corpus-{group}"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(byte_seeds(Seeds.from_json(json.loads(seeds_file.read_text())))[group]):
        (corpus / f"seed-{i}").write_bytes(data)
    regressions = Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "corpus" / group
    dictionary = work / "receipts.dict"
    dictionary.write_text("".join(f"kw{i}={w}\n" for i, w in enumerate(DICTIONARY)))
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [
        str(corpus),
        *([str(regressions)] if regressions.is_dir() else []),
        f"-runs={runs}",
        f"-max_total_time={max(1, int(seconds))}",
        f"-dict={dictionary}",
        f"-artifact_prefix={artifacts}/{group}-",
        "-max_len=16384",
        "-timeout=20",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
    ]
    cmd = [
        sys.executable,
        "-m",
        "loadtest.fuzz_receipts",
        "--child",
        group,
        "--seeds-file",
        str(seeds_file),
        "--instrument",
        instrument,
        "--",
        *args,
    ]
    start = time.monotonic()
    log = artifacts / f"atheris-{group}.log"
    with log.open("wb") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 600).returncode
    text = log.read_text(errors="replace")
    stats = _STATS.findall(text)
    executed = re.search(r"stat::number_of_executed_units: (\d+)", text)
    found = [] if rc == 0 else [text[-6000:]]
    coverage = f"cov {stats[-1][1]} ft {stats[-1][2]}" if stats else ""
    return Outcome(
        group,
        int(executed.group(1)) if executed else int(stats[-1][0]) if stats else 0,
        time.monotonic() - start,
        found,
        coverage,
    )


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        split = argv.index("--")
        atheris_child(argv[1], Path(argv[3]), argv[5].split(","), argv[split + 1 :])
        return 0
    p = argparse.ArgumentParser(prog="python -m loadtest.fuzz_receipts", description=__doc__.split("\n")[0])
    p.add_argument("--engine", choices=["atheris", "hypothesis"], required=True)
    p.add_argument("--target", choices=[*GROUPS, "all"], default="all")
    p.add_argument("--runs", type=int, default=10_000, help="executions per target group at most")
    p.add_argument("--seconds", type=float, default=60.0, help="wall time for all groups together")
    p.add_argument(
        "--instrument",
        default="merkle,asn1crypto",
        help="packages atheris instruments for coverage (asn1crypto: the DER parser; slow to instrument)",
    )
    p.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"), help="crashing inputs (atheris)")
    ns = p.parse_args(argv)
    groups = list(GROUPS) if ns.target == "all" else [ns.target]
    share = ns.seconds / len(groups)

    from loadtest.fuzz_seeds import build_seeds

    seeds = build_seeds()
    print(
        f"seeds: {len(seeds.receipts)} receipts, {len(seeds.notes)} checkpoints, "
        f"{sum(map(len, seeds.anchors.values()))} anchors; engine {ns.engine}; "
        f"per group at most {ns.runs} runs and {share:.0f} s",
        flush=True,
    )
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="notar-fuzz-") as tmp:
        work = Path(tmp)
        seeds_file = work / "seeds.json"
        seeds_file.write_text(json.dumps(seeds.to_json()))
        targets = None
        for group in groups:
            if ns.engine == "atheris":
                o = atheris_group(
                    group,
                    seeds_file,
                    work,
                    ns.artifacts.resolve(),
                    runs=ns.runs,
                    seconds=share,
                    instrument=ns.instrument,
                )
            else:
                if targets is None:
                    from loadtest.fuzz_targets import Targets

                    targets = Targets(seeds)
                o = hypothesis_group(group, targets, seeds, runs=ns.runs, seconds=share)
            outcomes.append(o)
            print(
                f"{o.target:8} {o.executions:>9,} executions in {o.seconds:6.1f} s  {o.coverage:22} "
                f"{'FOUND ' + str(len(o.found)) if o.found else 'nothing found'}",
                flush=True,
            )
            for f in o.found:
                print(f, file=sys.stderr)
    total = sum(o.executions for o in outcomes)
    print(
        f"total {total:,} executions, {sum(len(o.found) for o in outcomes)} finding(s); "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
        flush=True,
    )
    return 1 if any(o.found for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
