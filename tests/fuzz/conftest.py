"""The fuzzers' seeds (real keys, a real `openssl ts` token), made once per session, and a way to
draw a fixed, reproducible sample of crafted inputs from a Hypothesis strategy."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from loadtest.fuzz_seeds import Seeds, build_seeds
from loadtest.fuzz_targets import Targets

T = TypeVar("T")


@pytest.fixture(scope="session")
def seeds() -> Seeds:
    return build_seeds()


@pytest.fixture(scope="session")
def targets(seeds: Seeds) -> Targets:
    return Targets(seeds)


def sample(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """`n` examples of `strategy`, the same ones on every run (derandomized, no database)."""
    out: list[T] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(value: Any) -> None:
        out.append(value)

    draw()
    return out
