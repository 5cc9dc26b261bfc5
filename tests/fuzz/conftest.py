"""The fuzzers' seeds (real keys, a real `openssl ts` token), made once per session."""

from __future__ import annotations

import pytest

from loadtest.fuzz_seeds import Seeds, build_seeds
from loadtest.fuzz_targets import Targets


@pytest.fixture(scope="session")
def seeds() -> Seeds:
    return build_seeds()


@pytest.fixture(scope="session")
def targets(seeds: Seeds) -> Targets:
    return Targets(seeds)
