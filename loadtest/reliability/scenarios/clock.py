"""Clock jumps: the anchor's wall clock steps forward and back (an NTP step) under load, while
its monotonic clock runs on (libfaketime, loadtest/reliability/fakeclock.py).

What notar must guarantee through it:

- the clock cosignature (tlog-cosignature/v1) of a bigger tree never carries an older time than
  one already signed, across restarts too: a clock that is behind signs with the last signed
  time until it catches up (clamped, never backdated); the checker holds every checkpoint seen
  to this, and local-chain block times likewise (``verify_chain``);
- batching, timeouts and the lease run on monotonic time: entries keep being acknowledged in
  the seconds after every step (no batch waits for the wall clock, no lease lapses);
- nothing acknowledged is lost (the checker).

The steps are checked to have taken effect: some checkpoint must carry a time from the clock
that was an hour ahead, and once the clock is stepped back behind it, none may carry less.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from ..checker import cosigned_times
from ..cluster import Cluster, make_cluster, running
from ..driver import Context, Fault, Outcome, drive, published_keys
from ..fakeclock import FakeClock, check_jumps
from ..workload import Record
from . import Scenario

HOUR = 3600
# S3 refuses requests signed more than 15 minutes off its own clock (RequestTimeTooSkewed; so does
# SeaweedFS): an anchor on S3 whose clock is off by more cannot publish or start until the clock
# is right, whatever notar does. Its steps stay within that.
S3_SKEW_STEP = 600
RESTART_BACKOFF_S = 2.0  # the workload's cap on Retry-After


@dataclass
class Steps:
    """The offsets to step the anchor's clock to, in order, and what each step did."""

    plan: list[tuple[int, bool]]  # (offset s, kill -9 and restart the anchor after the step)
    hold_s: float
    stalls: list[str] = field(default_factory=list)
    restarts: int = 0
    acked_after: list[int] = field(default_factory=list)  # entries acknowledged in each hold
    record: Record | None = None


def plan_for(step: int, long: bool, rng: random.Random, *, most: int = 2) -> list[tuple[int, bool]]:
    """Short: +step, -step (2 steps behind the last signed time), a kill -9 while behind, back
    to true time (still a step behind). Long: that, then 16 random steps of 1 to ``most`` steps
    either way (±10 %), about a third of them followed by a kill -9, and back to true time."""
    plan = [(step, False), (-step, False), (-step, True), (0, False)]
    multiples = [m for k in range(1, most + 1) for m in (-k, k)]
    if long:
        for _ in range(16):
            offset = rng.choice(multiples) * step + rng.randint(-step // 10, step // 10)
            plan.append((offset, rng.random() < 0.3))
        plan.append((0, False))
    return plan


def stepper(clock: FakeClock, steps: Steps) -> Fault:
    async def fault(cluster: Cluster, record: Record) -> int:
        steps.record = record
        for offset, restart in steps.plan:
            if offset != clock.offset:
                clock.step(offset)
            if restart:
                pod = cluster.anchor
                pod.kill9()
                pod.start()
                await asyncio.to_thread(pod.wait_ready)
                steps.restarts += 1
            before = len(record.acked)
            # acknowledgements must go on after the step (after a restart, once the clients'
            # back-off from the 503s they got meanwhile is over)
            hold = steps.hold_s + (RESTART_BACKOFF_S if restart else 0.0)
            await asyncio.sleep(hold)
            steps.acked_after.append(len(record.acked) - before)
            if len(record.acked) == before:
                steps.stalls.append(f"nothing acknowledged in {hold:g} s after stepping to {offset:+d} s")
        return len(steps.plan)

    return fault


def _effects(times: list[tuple[int, int]], started: float, step: int) -> list[str]:
    """The forward step must show in some cosigned time; the checker does the rest."""
    if not times:
        return ["no cosigned checkpoint was seen"]
    ahead = max(t for _, t in times) - started
    if ahead < step - 120:
        return [f"no checkpoint was cosigned by the clock {step} s ahead (at most {ahead:+.0f} s): no step?"]
    return []


def _scenario(name: str, doc: str, topology: bool, step: int, most: int) -> Scenario:
    async def run(ctx: Context) -> Outcome:
        check_jumps(ctx.workdir)  # libfaketime really steps a child's time.time()
        rng = random.Random(ctx.seed)
        clock = FakeClock(ctx.workdir / "anchor-clock")
        cluster = make_cluster(ctx.workdir, bucket=ctx.bucket if topology else None)
        cluster.anchor.env.update(clock.env())  # only the anchor's clock jumps
        steps = Steps(plan_for(step, ctx.long, rng, most=most), hold_s=1.5 if not ctx.long else 2.0)
        started = time.time()
        with running(cluster):
            keys = published_keys(cluster.verify_urls[0])
            outcome = await drive(name, cluster, stepper(clock, steps), settle_s=2.0)
        seen = steps.record.checkpoints if steps.record else set()
        times = cosigned_times(seen, cluster.origin, keys)
        outcome.problems += steps.stalls + _effects(times, started, step)
        outcome.extra |= {
            "steps": [o for o, _ in steps.plan],
            "restarts": steps.restarts,
            "acked_after_each_step": steps.acked_after,
            "cosigned_times_seen": len(times),
            "max_cosigned_ahead_s": round(max((t for _, t in times), default=started) - started),
        }
        return outcome

    return Scenario(name, doc, topology, run)


SCENARIOS = [
    _scenario(
        "clock-jump",
        "the embedded server's wall clock steps +1 h and -1 h under load (libfaketime), kill -9 while behind",
        False,
        HOUR,
        2,
    ),
    _scenario(
        "clock-jump-anchor",
        "the anchor pod's wall clock steps +10 min and -10 min under load, kill -9 while behind",
        True,
        S3_SKEW_STEP,
        1,  # 660 s at most: within S3's 15 minutes
    ),
]
