"""Interleaved timing shared by the comparison scripts.

The machine is shared and noisy: ours and the anchor are timed alternately in the same loop, and
each reports the best median over a few rounds, so a ratio compares like with like.
"""
from __future__ import annotations

import statistics
import time


def interleaved(fns: dict, *, reps: int = 5, rounds: int = 3, min_time: float = 0.05) -> dict:
    """{name: seconds} — best over `rounds` of the median of `reps` calls, calls interleaved."""
    for f in fns.values():
        f()  # warm-up (allocations, page faults, thread start)
    # Repeat cheap calls so each sample lasts at least min_time / reps.
    inner = {}
    for name, f in fns.items():
        t = time.perf_counter()
        f()
        dt = time.perf_counter() - t
        inner[name] = max(1, int(min_time / reps / max(dt, 1e-7)))
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        samples = {name: [] for name in fns}
        for _ in range(reps):
            for name, f in fns.items():
                n = inner[name]
                t = time.perf_counter()
                for _ in range(n):
                    f()
                samples[name].append((time.perf_counter() - t) / n)
        for name in fns:
            best[name] = min(best[name], statistics.median(samples[name]))
    return best
