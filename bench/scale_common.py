# -*- test-case-name: tests.integration.test_bench_scale -*-
"""
What the C{scale} workloads of every client share: the kinds, the command
line, resident memory, the helper process that publishes to many queues, the
per-queue body check, and the JSON record.

Each client has a script with the same command line, one process per kind
and N::

    python -m bench.scale_pika --kind consumers --n 1000 --messages 20000 --size 100

It prints one JSON line (L{bench.common.emit}): C{workload} (C{"scale"}),
C{kind}, C{client}, C{n}, C{open_s}/C{open_cpu_s} (wall and CPU time to open
all N at once), C{close_s}/C{close_cpu_s} (to close them all at once),
C{rss_before}/C{rss_after} (resident bytes, after C{gc.collect()}, before
opening and once all N are open and idle) and C{bytes_per_item}; for
C{consumers} also C{messages}, C{size}, C{deliver_s}, C{deliver_cpu_s} and
C{cpu_us_per_delivery}.  With C{--traced}, allocations are traced
(C{tracemalloc}) from before opening to all N idle, and the record adds
C{traced_bytes_per_item} (the Python heap kept per item, after
C{gc.collect()}) and C{traced_peak_per_item} (the highest the heap went while
opening, per item, which resident memory keeps: CPython seldom gives freed
memory back); tracing slows allocation, so the driver takes no times from
such runs.  A failure prints C{{"error": ...}} and exits
non-zero (L{bench.common.fail}).

The kinds:

  - C{connections}: N connections in one process.
  - C{channels}: N channels on one connection.
  - C{consumers}: N consumers on one channel, each on its own queue; then a
    helper process publishes C{--messages} bodies round-robin over the N
    queues while the client's event loop waits for it (so the client reads
    nothing meanwhile), and the client acks each one.  The CPU per delivery
    is the client's, from the end of the publishing to the last delivery,
    divided by the messages.
  - C{queues}: N C{queue.declare} on one channel, then N C{queue.delete}.

Before measuring, each script opens and closes one item of its kind (a
warm-up), so that what is measured is the cost of one more, not of the
client's first use of a code path.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tracemalloc
import uuid
from collections.abc import Iterable
from typing import Any

from bench import common
from bench.common import BROKER_URL, BenchError, Meter, check_body

WORKLOAD = "scale"
KINDS = ["connections", "channels", "consumers", "queues"]
NS = [1, 10, 100, 1000]
#: the consumers kind: messages published over the N queues, and their size
MESSAGES = 20_000
SIZE = 100
#: the consumers' prefetch (RabbitMQ applies it per consumer)
PREFETCH = 1_000
#: seconds the consumers kind waits for its last delivery
DELIVERY_TIMEOUT = 120.0
#: seconds the N open items are left to settle before their memory is taken
SETTLE = 0.05

_PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_args(client: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bench.scale_{client}")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--n", type=int, required=True, help="how many of the kind")
    parser.add_argument("--messages", type=int, default=MESSAGES, help="consumers kind only")
    parser.add_argument("--size", type=int, default=SIZE, help="consumers kind only")
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument(
        "--traced",
        action="store_true",
        help="also trace Python allocations (tracemalloc) while opening: the Python heap "
        "kept per item and its peak; the times of such a run are not the client's",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if args.size < 12:
        parser.error("--size must be at least 12 bytes (the body carries its index)")
    args.client = client
    args.workload = WORKLOAD
    return args


def queue_names(client: str, kind: str, n: int) -> tuple[str, list[str]]:
    """
    N fresh queue names for one run.

    @return: their prefix, and the names C{<prefix>-0} to C{<prefix>-<n-1>}
        (the helper's C{spread} addresses them by that pattern).
    """
    prefix = f"bench-scale-{client}-{kind}-{uuid.uuid4().hex[:12]}"
    return prefix, [f"{prefix}-{i}" for i in range(n)]


def rss() -> int:
    """
    This process's resident memory in bytes (C{/proc/self/statm}), after a
    full collection.
    """
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def check_distinct(values: Iterable[object], n: int, what: str, items: str) -> None:
    """
    Check that the N C{items} opened got N different C{what} (channel ids,
    consumer tags).

    @raise BenchError: fewer.
    """
    distinct = len(set(values))
    if distinct != n:
        raise BenchError(f"{distinct} {what} for {n} {items}")


def check_declared(names: list[str], declared: Iterable[object]) -> None:
    """
    Check that the broker declared each queue under the name asked for.

    @raise BenchError: one it named otherwise.
    """
    for name, got in zip(names, declared, strict=True):
        if got != name:
            raise BenchError(f"declared {got!r}, not {name!r}")


class Scale:
    """
    The measurements of one run: L{opening}/L{opened}, then
    L{closing}/L{closed}, and for consumers L{delivered}.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.open = Meter()
        self.close = Meter()
        self.rss_before = 0
        self.rss_after = 0
        self.deliver: Meter | None = None
        self.traced_before = self.traced_after = self.traced_peak = 0

    def opening(self) -> None:
        """
        Everything but the N items exists and is warm: take the memory
        baseline and start the open meter (and, with C{--traced}, start
        tracing allocations).
        """
        self.rss_before = rss()
        if self.args.traced:
            tracemalloc.start()
            self.traced_before = tracemalloc.get_traced_memory()[0]
        self.open.start()

    def opened(self) -> None:
        """
        All N are open: stop the open meter.  Call L{idle} once they have
        settled.
        """
        self.open.stop()

    def idle(self) -> None:
        self.rss_after = rss()
        if self.args.traced:
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.traced_after = current
            self.traced_peak = peak

    def closing(self) -> None:
        self.close.start()

    def closed(self) -> None:
        self.close.stop()

    def record(self) -> dict[str, Any]:
        args = self.args
        record: dict[str, Any] = {
            "workload": WORKLOAD,
            "kind": args.kind,
            "client": args.client,
            "n": args.n,
            "open_s": round(self.open.wall, 5),
            "open_cpu_s": round(self.open.cpu, 5),
            "close_s": round(self.close.wall, 5),
            "close_cpu_s": round(self.close.cpu, 5),
            "rss_before": self.rss_before,
            "rss_after": self.rss_after,
            "bytes_per_item": round((self.rss_after - self.rss_before) / args.n),
        }
        if args.traced:
            n = args.n
            record.update(
                traced=True,
                traced_bytes_per_item=round((self.traced_after - self.traced_before) / n),
                traced_peak_per_item=round((self.traced_peak - self.traced_before) / n),
            )
        if self.deliver is not None:
            record.update(
                messages=args.messages,
                size=args.size,
                deliver_s=round(self.deliver.wall, 5),
                deliver_cpu_s=round(self.deliver.cpu, 5),
                cpu_us_per_delivery=round(self.deliver.cpu / args.messages * 1e6, 2),
            )
        return record


class Deliveries:
    """
    The consumers kind's check, the same for every client: queue C{q} of N
    gets bodies C{q}, C{q + N}, C{q + 2N}, ... in that order (the helper
    publishes body C{i} to queue C{i % N} on one channel); every body is
    checked.  The meter runs from L{start}, once all are published, to the
    last delivery.

    @ivar done: whether the last delivery arrived.
    @ivar error: the first wrong body, once one came.
    """

    def __init__(self, n: int, messages: int, size: int) -> None:
        self.n = n
        self.messages = messages
        self.size = size
        self.next = list(range(n))
        self.received = 0
        self.meter = Meter()
        self.done = False
        self.error: BenchError | None = None

    def start(self) -> None:
        self.meter.start()

    def check(self, queue_index: int, got: bytes) -> bool:
        """
        Check one delivery to the consumer of queue C{queue_index}.

        @return: whether it was the last (then the meter has stopped).
        @raise BenchError: a wrong body, or more than were published.
        """
        expected = self.next[queue_index]
        if expected >= self.messages:
            raise BenchError(f"queue {queue_index}: an extra message {bytes(got[:20])!r}")
        check_body(expected, self.size, got)
        self.next[queue_index] = expected + self.n
        self.received += 1
        if self.received == self.messages:
            self.meter.stop()
            self.done = True
        return self.done

    def missing(self) -> BenchError:
        return BenchError(
            f"{self.received} of {self.messages} deliveries after {DELIVERY_TIMEOUT:.0f}s"
        )


def publish_spread(url: str, prefix: str, n: int, messages: int, size: int) -> None:
    """
    Publish the consumers kind's messages round-robin over the N queues
    C{<prefix>-0} ... with the helper process, and wait for it.  The wait
    blocks the client's event loop, so the client does not read its socket
    meanwhile: the deliveries wait in the socket's buffer and in the
    broker, and once this returns they come as fast as the client takes
    them.  The helper's own CPU time is not the client's.

    @raise BenchError: the helper failed.
    """
    common.helper(
        "spread",
        "--url",
        url,
        "--queue",
        prefix,
        "--queues",
        str(n),
        "--count",
        str(messages),
        "--size",
        str(size),
    )


def limit_files(n: int) -> None:
    """
    Raise this process's limit on open files to fit C{n} connections.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise BenchError(f"{n} connections need {want} open files; the limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
