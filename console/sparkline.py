"""The queue page's throughput picture: tasks completed per minute as a small SVG line.

Pure: counts in, coordinates and words out; the template draws them (no script).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 120
HEIGHT = 24
BUCKET_SECONDS = 60
BUCKETS = 60


def hour_start(now: float | None = None) -> float:
    """The first minute of the last hour, on whole minutes, so that the buckets (the last one is
    this minute so far) stay put between polls and the picture changes only with the counts."""
    minute = int((now if now is not None else time.time()) // BUCKET_SECONDS) * BUCKET_SECONDS
    return float(minute - (BUCKETS - 1) * BUCKET_SECONDS)


@dataclass(frozen=True)
class Sparkline:
    points: str        # the polyline's "x,y x,y ..."
    total: int
    peak: int
    title: str         # the picture's text alternative
    width: int = WIDTH
    height: int = HEIGHT


def build(counts: Sequence[int], label: str) -> Sparkline:
    """One line across the width, oldest minute at the left; the busiest minute touches the top."""
    values = list(counts) or [0]
    peak, total = max(values), sum(values)
    step = WIDTH / max(len(values) - 1, 1)
    usable = HEIGHT - 2  # a stroke's width of room at top and bottom
    points = " ".join(
        f"{i * step:.1f},{HEIGHT - 1 - (v / peak * usable if peak else 0):.1f}" for i, v in enumerate(values)
    )
    minutes = len(values)
    if total:
        title = (f"{label}: {total:,} completed in the last {minutes} minutes, at most {peak:,} in a minute; "
                 f"{values[-1]:,} in the current minute")
    else:
        title = f"{label}: nothing completed in the last {minutes} minutes"
    return Sparkline(points, total, peak, title)
