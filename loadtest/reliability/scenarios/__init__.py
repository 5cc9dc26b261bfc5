"""The chaos scenarios. Each module of this package lists its own in ``SCENARIOS``; the runner
(loadtest/chaos.py) and the tests (tests/reliability/) find them here by name."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..driver import Context, Outcome


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    needs_s3: bool  # runs the Kubernetes topology on an S3 bucket, else the embedded fs store
    run: Callable[[Context], Awaitable[Outcome]]


def all_scenarios() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for s in getattr(module, "SCENARIOS", ()):
            if s.name in found:
                raise RuntimeError(f"two scenarios are named {s.name!r}")
            found[s.name] = s
    return dict(sorted(found.items()))
