#!/usr/bin/env python
"""Lane balance: the largest lane's bytes, round-robin against size-aware, printed as markdown.

    python benchmarks/lanes.py

A lane is one DaemonSet pod pulling its images one after another, so with parallel pulls a
node is ready when its largest lane is: its bytes are what to keep small. For each mix of
compressed image sizes (fixed seeds: the output is the same on every run) and each lane count,
the table gives the largest lane for round-robin (lanes without a lock file) and for size-aware
assignment (prepull.core.lanes.by_size, with the sizes a lock file records), each against the lower
bound no assignment can beat: max(total / lanes, largest image). Target: size-aware within 4/3
of the bound on every mix. Pure arithmetic, no cluster: it says nothing about pull speed itself.
"""

import datetime
import platform
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "components"))

from prepull.core.lanes import by_size, largest_lane, lower_bound, round_robin  # noqa: E402

MB = 10**6
GB = 10**9
LANES = (2, 3, 4)
TARGET = 4 / 3


def _small(rng: random.Random, count: int, low: int = 20 * MB, high: int = 400 * MB) -> list:
    return [rng.randrange(low, high) for _ in range(count)]


def _long_tail(rng: random.Random, count: int) -> list:
    # Pareto (alpha 1.2) from 30 MB, capped at 12 GB: most images small, a few very large.
    return [min(int(30 * MB * rng.paretovariate(1.2)), 12 * GB) for _ in range(count)]


def mixes() -> dict:
    """Name -> compressed sizes in image order (each from its own fixed seed)."""
    return {
        "one 9 GB image among 11 small ones (20-400 MB)": [9 * GB] + _small(random.Random(1), 11),
        "20 images, long-tailed (Pareto 1.2 from 30 MB, seed 42)": _long_tail(random.Random(42), 20),
        "40 images, long-tailed (Pareto 1.2 from 30 MB, seed 7)": _long_tail(random.Random(7), 40),
        "ML node: 9.5, 6 and 4 GB images first, then 9 small ones": [int(9.5 * GB), 6 * GB, 4 * GB] + _small(random.Random(3), 9),
        "big images at every other position (5 GB, 80 MB) x 6": [5 * GB, 80 * MB] * 6,
        "12 equal images of 500 MB": [500 * MB] * 12,
    }


def rows() -> list:
    """(mix, lanes, total, bound, round-robin largest, size-aware largest) per mix and lane count."""
    out = []
    for name, sizes in mixes().items():
        for lanes in LANES:
            rr = largest_lane(sizes, round_robin(len(sizes), lanes))
            sa = largest_lane(sizes, by_size(sizes, lanes))
            out.append((name, lanes, sum(sizes), lower_bound(sizes, lanes), rr, sa))
    return out


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


def table() -> str:
    lines = [
        "| mix | lanes | total | bound | round-robin: largest lane | size-aware: largest lane |",
        "|---|---|---|---|---|---|",
    ]
    for name, lanes, total, bound, rr, sa in rows():
        lines.append(f"| {name} | {lanes} | {_gb(total)} | {_gb(bound)} | {_gb(rr)} ({rr / bound:.2f}×) | {_gb(sa)} ({sa / bound:.2f}×) |")
    return "\n".join(lines)


def main() -> int:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Run {now} on {platform.system()} {platform.release()}, Python {platform.python_version()}.\n")
    print(table())
    worst = max(sa / bound for *_, bound, _, sa in rows())
    print(f"\nSize-aware, worst ratio to the bound: {worst:.3f} (target ≤ {TARGET:.3f}).")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
