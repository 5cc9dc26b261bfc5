"""The SCITT benchmark (loadtest/bench_scitt.py) runs as documented (never timing anything)."""

from __future__ import annotations

import cbor2
import pytest

from loadtest import bench_scitt as bench
from merkle.scitt import parse_statement


def test_the_statements_are_distinct_and_signed_by_the_issuer() -> None:
    issuer = bench.Issuer()
    statements = issuer.statements("t", 5)
    entries = {parse_statement(s).entry for s in statements}
    assert len(entries) == 5
    s = parse_statement(statements[0])
    assert s.issuer == bench.ISS and cbor2.loads(statements[0]).tag == 18
    issuer.key.public_key().verify(s.signature, s.to_be_signed)


@pytest.mark.parametrize("bad", [["--rounds", "0"], ["--seconds", "-1"], ["--connections", "0"]])
def test_bad_flags_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(bad)


def test_a_tiny_run_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    """A real `notar serve`, an issuer registered with the CLI, receipts verified offline."""
    assert bench.main(["--rounds", "1", "--seconds", "0.5", "--connections", "4"]) == 0
    out = capsys.readouterr().out
    assert "| closed loop, 4 connections |" in out and "| open loop at half that rate |" in out
    assert "sampled receipts verified offline" in out and " 0 sampled" not in out
    row = next(line for line in out.splitlines() if line.startswith("| closed loop"))
    assert row.split(" | ")[4] == "0"  # no failed registration
