"""What a test needs from the machine: missing, it skips on a developer's box and fails in CI
(``CI=true``), where everything scripts/install --test installs must be there and every test runs."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing(message: str) -> NoReturn:
    """Skip the test for want of `message`'s tool, or fail it under CI, never skip there."""
    if in_ci():
        pytest.fail(f"{message}; in CI this test must run, never skip")
    pytest.skip(message)
