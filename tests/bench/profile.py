"""Summarise a py-spy collapsed-stack file (`--profile DIR` of the benchmarks).

    python -m tests.bench.profile DIR/throughput-1x64-controlplane.txt [--top 25]

Prints the share of samples per function, self (the frame on top) and inclusive (anywhere on
the stack, counted once per sample), and per package. Idle samples (the event loop waiting in
epoll/select) are reported separately: --nonblocking py-spy samples sleeping threads too.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once \(asyncio/base_events.py|wait \(threading.py|_worker \(concurrent)")


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _package(frame: str) -> str:
    m = re.search(r"\(([^)]*)\)", frame)
    where = m.group(1) if m else frame
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return where.split("/")[0] if "/" in where else where.split(".")[0]


def summarise(path: Path, top: int = 25) -> str:
    stacks = load(path)
    total = sum(c for _, c in stacks)
    idle = sum(c for s, c in stacks if IDLE.search(s[-1]))
    busy = [(s, c) for s, c in stacks if not IDLE.search(s[-1])]
    busy_total = sum(c for _, c in busy) or 1
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for stack, count in busy:
        self_time[stack[-1]] += count
        packages[_package(stack[-1])] += count
        for frame in set(stack):
            inclusive[frame] += count
    out = [f"{path.name}: {total} samples, {idle} idle ({100 * idle / max(total, 1):.0f}%), {busy_total} busy",
           "", "busy samples by package of the top frame:"]
    out += [f"  {100 * c / busy_total:5.1f}%  {p}" for p, c in packages.most_common(12)]
    out += ["", f"top {top} self:"]
    out += [f"  {100 * c / busy_total:5.1f}%  {f}" for f, c in self_time.most_common(top)]
    out += ["", f"top {top} inclusive:"]
    out += [f"  {100 * c / busy_total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    for path in args.files:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
