"""
Where a client's time goes on a workload: the workload's measured part (the
span of its L{Meter <bench.common.Meter>}) profiled with C{cProfile}, its own
time summed by layer, as shares of the total.

    python -m bench.profile --workload rpc [--client txamqp_next] [--count N]

The layers: the sans-IO core (the frame reader, the codecs and the
connection machine, generated codecs included), the Twisted adapter
(connections, channels, messages, confirms, Thrift), Twisted itself (the
reactor, Deferreds, its logging context), the Thrift library, the socket's
C{send} and C{recv} (the kernel's work on loopback TCP, both ends of it),
waiting in C{epoll} (the process idle: the broker's turn), and the rest (the
benchmark's own loop and checks, builtins).  Profiling slows Python code
several times more than system calls, so the shares are a map of where to
look, not a measurement of speed; the benchmark's own numbers are that.
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

CORE = ("_connection", "_frames", "_codec", "_methods", "_compile", "_events")

#: (layer, test on a profile entry's file and function name), first match
LAYERS: list[tuple[str, Callable[[str, str], bool]]] = [
    ("waiting in epoll (the broker's turn)", lambda f, n: f == "~" and "'poll'" in n),
    (
        "socket send/recv (kernel)",
        lambda f, n: f == "~" and any(f"'{c}" in n for c in ("send", "recv")),
    ),
    (
        "txamqp_next core (sans-IO)",
        lambda f, n: (
            f.startswith("<txamqp_next") or any(f.endswith(f"txamqp_next/{m}.py") for m in CORE)
        ),
    ),
    ("txamqp_next adapter", lambda f, n: "/txamqp_next/" in f),
    ("Thrift library", lambda f, n: "/thrift/" in f and "site-packages" in f),
    ("Twisted", lambda f, n: "/twisted/" in f),
]
OTHER = "other (the benchmark's loop and checks, builtins)"


def layer_of(file: str, name: str) -> str:
    for layer, test in LAYERS:
        if test(file, name):
            return layer
    return OTHER


def report(path: str, title: str, top: int) -> str:
    """
    The layers' shares and the C{top} functions by own time, from the
    profile statistics in C{path}.
    """
    stats = pstats.Stats(path)
    by_layer: dict[str, float] = defaultdict(float)
    rows = []
    for (file, _line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        own = entry[2]
        by_layer[layer_of(file, name)] += own
        rows.append((own, file, name))
    total = sum(by_layer.values()) or 1.0
    lines = [f"{title}: own time by layer (cProfile, {total:.2f} s measured)"]
    for layer, own in sorted(by_layer.items(), key=lambda item: -item[1]):
        lines.append(f"  {own / total * 100:5.1f}%  {layer}")
    lines.append(f"top {top} functions by own time:")
    for own, file, name in sorted(rows, reverse=True)[:top]:
        where = name if file == "~" else f"{Path(file).name}:{name}"
        lines.append(f"  {own / total * 100:5.1f}%  {where}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--client", default="txamqp_next")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--top", type=int, default=8, help="functions listed by own time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        path = os.path.join(tmp, "stats")
        command = [sys.executable, "-m", f"bench.client_{args.client}", "--workload", args.workload]
        if args.count is not None:
            command += ["--count", str(args.count)]
        proc = subprocess.run(
            command, env={**os.environ, "BENCH_PROFILE": path}, capture_output=True, text=True
        )
        if proc.returncode != 0 or not os.path.exists(path):
            print(proc.stdout + proc.stderr[-2000:], file=sys.stderr)
            return 1
        print(proc.stdout.strip())
        print(report(path, f"{args.client} {args.workload}", args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
