"""
What the per-client benchmark scripts share: the command line, message
bodies, the meter (wall and CPU time of this process), the JSON result line,
and the helper process that fills and checks queues outside the measured
part.

Every client script (C{bench.client_*}) takes the same arguments::

    python -m bench.client_pika --workload publish --count 100000 --size 100

and prints one JSON line on stdout: C{workload}, C{client}, C{count},
C{size}, C{wall_s}, C{msgs_per_s}, C{cpu_us_per_msg} (user + system time of
that process during the measured part, from C{resource.getrusage}), plus
C{p50_us}/C{p99_us} for C{rpc} and C{thrift} (with C{concurrent_per_s} and
C{concurrent_cpu_us} for the latter) and C{mb_per_s} for C{large}.  A failure
prints C{{"error": ...}} and exits non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

_W = TypeVar("_W")

BROKER_URL = os.environ.get("TXAMQP_NEXT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")

#: workload -> (count, size) as the issue specifies
DEFAULTS: dict[str, tuple[int, int]] = {
    "publish": (100_000, 100),
    "confirm": (50_000, 100),
    "consume": (100_000, 100),
    "rpc": (5_000, 100),
    "large": (200, 1 << 20),
    "declare": (1_000, 0),
    "thrift": (2_000, 100),
}
WORKLOADS = list(DEFAULTS)

#: how many unconfirmed publishes the confirm workload keeps in flight
CONFIRM_WINDOW = 1_000
#: the consumer prefetch of the consume and large workloads
PREFETCH = 1_000
#: publishes per batch before the publisher yields to its event loop
PUBLISH_BATCH = 1_000
#: the large workload: publishes per batch, and the consumer prefetch
LARGE_BATCH = 10
LARGE_PREFETCH = 10


class BenchError(Exception):
    """
    A workload saw a wrong count or body.
    """


def parse_args(client: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bench.client_{client}")
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--url", default=BROKER_URL)
    args = parser.parse_args(argv)
    count, size = DEFAULTS[args.workload]
    if args.count is None:
        args.count = count
    if args.size is None:
        args.size = size
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.workload != "declare" and args.size < 12:
        parser.error("--size must be at least 12 bytes (the body carries its index)")
    args.client = client
    return args


def queue_name(client: str, workload: str) -> str:
    """
    A fresh queue name for one run.
    """
    return f"bench-{client}-{workload}-{uuid.uuid4().hex[:12]}"


def body(index: int, size: int) -> bytes:
    """
    The body of message C{index}: its index in ASCII, then filler.  Each
    body differs, so a lost, duplicated or reordered message shows.
    """
    head = b"%012d" % index
    return head + b"." * (size - len(head))


_FILLERS: dict[int, bytes] = {}


def check_body(index: int, size: int, got: bytes) -> None:
    """
    @raise BenchError: C{got} is not the body of message C{index}.
    """
    filler = _FILLERS.get(size)
    if filler is None:
        filler = _FILLERS[size] = b"." * (size - 12)
    if len(got) != size or not (got.startswith(b"%012d" % index) and got.endswith(filler)):
        raise BenchError(f"message {index}: wrong body {bytes(got[:20])!r}... ({len(got)} bytes)")


def bodies(count: int, size: int) -> list[bytes]:
    """
    The bodies of a run, made before the meter starts.
    """
    return [body(i, size) for i in range(count)]


def broker_pid(url: str = BROKER_URL) -> int | None:
    """
    The process id of the broker whose CPU time the meter reads: the
    C{BENCH_BROKER_PID} environment variable, else the C{beam.smp} process
    listening on C{url}'s port (found through C{/proc/net/tcp} and the
    processes' open sockets), else the only C{beam.smp} process; C{None}
    when none can be told.
    """
    given = os.environ.get("BENCH_BROKER_PID")
    if given:
        return int(given)
    beams = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "beam.smp":
                    beams.append(int(entry))
        except OSError:
            continue
    if len(beams) == 1:
        return beams[0]
    inodes = _listening_inodes(urlsplit(url).port or 5672)
    for pid in beams:
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return pid
    return None


def _listening_inodes(port: int) -> set[str]:
    """
    The inodes of the TCP sockets listening on C{port}.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except (OSError, StopIteration):
            continue
    return inodes


def process_cpu(pid: int) -> float | None:
    """
    The user + system CPU seconds process C{pid} has used, from
    C{/proc/<pid>/stat}; C{None} if it cannot be read.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are the 14th and 15th fields, in clock ticks
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """
    Wall and CPU time (user + system, this process only) between L{start}
    and L{stop}, and the broker's CPU time over the same span (see
    L{broker_pid}; C{None} when it cannot be read).
    """

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.broker_cpu: float | None = None
        self._t0 = 0.0
        self._c0 = 0.0
        self._b0: float | None = None
        self._broker = broker_pid()

    @staticmethod
    def _cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def start(self) -> None:
        self._b0 = None if self._broker is None else process_cpu(self._broker)
        _profile_start()
        self._c0 = self._cpu()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = self._cpu() - self._c0
        _profile_stop()
        if self._broker is not None and self._b0 is not None:
            now = process_cpu(self._broker)
            self.broker_cpu = None if now is None else now - self._b0


#: with C{BENCH_PROFILE} set to a path, every meter's span is profiled with
#: C{cProfile} and the statistics written there (see L{bench.profile})
_PROFILE_PATH = os.environ.get("BENCH_PROFILE")
_profiler: Any = None


def _profile_start() -> None:
    global _profiler
    if _PROFILE_PATH:
        import cProfile

        if _profiler is None:
            _profiler = cProfile.Profile()
        _profiler.enable()


def _profile_stop() -> None:
    if _profiler is not None:
        _profiler.disable()
        _profiler.dump_stats(_PROFILE_PATH)


def confirm_window(count: int, publish: Callable[[int], Any]) -> tuple[Callable[[], None], Any]:
    """
    Publish C{count} messages with at most L{CONFIRM_WINDOW} unconfirmed,
    for clients whose confirm-mode publish returns a Deferred that fires on
    the broker's ack.

    @param publish: sends message C{i} and returns its Deferred.
    @return: C{start}, which sends the first window, and a Deferred that
        fires once all C{count} are confirmed or fails with the first
        failure.
    """
    from twisted.internet import defer

    done: defer.Deferred[None] = defer.Deferred()
    state = {"sent": 0, "acked": 0}

    def acked(_: object) -> None:
        state["acked"] += 1
        if state["sent"] < count:
            send()
        elif state["acked"] == count and not done.called:
            done.callback(None)

    def failed(failure: Any) -> None:
        if not done.called:
            done.errback(failure)

    def send() -> None:
        i = state["sent"]
        state["sent"] = i + 1
        publish(i).addCallbacks(acked, failed)

    def start() -> None:
        for _ in range(min(CONFIRM_WINDOW, count)):
            send()

    return start, done


def percentile(values: list[float], q: float) -> float:
    """
    The C{q}-th percentile (0-100) of C{values}, nearest rank.
    """
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def result(args: argparse.Namespace, meter: Meter, **extra: Any) -> dict[str, Any]:
    """
    The result record of a finished run.
    """
    count = args.count
    record: dict[str, Any] = {
        "workload": args.workload,
        "client": args.client,
        "count": count,
        "size": args.size,
        "wall_s": round(meter.wall, 4),
        "msgs_per_s": round(count / meter.wall, 1),
        "cpu_s": round(meter.cpu, 4),
        "cpu_us_per_msg": round(meter.cpu / count * 1e6, 2),
    }
    if meter.broker_cpu is not None:
        record["broker_cpu_us_per_msg"] = round(meter.broker_cpu / count * 1e6, 2)
    if args.workload == "large":
        record["mb_per_s"] = round(count * args.size / meter.wall / 1e6, 2)
    record.update(extra)
    return record


def rpc_extra(latencies: list[float]) -> dict[str, Any]:
    """
    The p50 and p99 round-trip times, in microseconds.
    """
    return {
        "p50_us": round(percentile(latencies, 50) * 1e6, 1),
        "p99_us": round(percentile(latencies, 99) * 1e6, 1),
    }


def thrift_result(
    args: argparse.Namespace, sequential: Meter, concurrent: Meter, latencies: list[float]
) -> dict[str, Any]:
    """
    The record of a C{thrift} run: the sequential calls' rate, CPU and
    latencies, and the concurrent calls' rate and CPU (and the broker's)
    per call, for C{args.count} calls each.
    """
    count = args.count
    extra: dict[str, Any] = {}
    if concurrent.broker_cpu is not None:
        extra["concurrent_broker_cpu_us"] = round(concurrent.broker_cpu / count * 1e6, 2)
    return result(
        args,
        sequential,
        **rpc_extra(latencies),
        concurrent_per_s=round(count / concurrent.wall, 1),
        concurrent_cpu_us=round(concurrent.cpu / count * 1e6, 2),
        **extra,
    )


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def fail(args: argparse.Namespace, error: BaseException | str) -> NoReturn:
    """
    Print a failed run's record and exit non-zero.
    """
    if isinstance(error, BaseException):
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        text = f"{type(error).__name__}: {error}"
    else:
        text = error
    emit({"workload": args.workload, "client": args.client, "error": text})
    sys.stdout.flush()
    os._exit(1)


def helper(*argv: str) -> None:
    """
    Run C{bench.helper} (pika's blocking client, in its own process, so none
    of its work counts against the client being measured).

    @raise BenchError: the helper failed.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "bench.helper", *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise BenchError(f"bench.helper {' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")


def prefill(url: str, queue: str, count: int, size: int) -> None:
    """
    Declare C{queue} and fill it with C{count} bodies (outside the meter).
    """
    helper("prefill", "--url", url, "--queue", queue, "--count", str(count), "--size", str(size))


def drain_and_check(url: str, queue: str, count: int, size: int) -> None:
    """
    Consume C{queue} (outside the meter), check it held exactly the
    C{count} bodies in order, and delete it.
    """
    helper("drain", "--url", url, "--queue", queue, "--count", str(count), "--size", str(size))


def run_twisted(
    args: argparse.Namespace, workload: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]]
) -> None:
    """
    Run a Twisted client's workload under C{task.react} and print its
    record (or its error).
    """
    from twisted.internet import defer, task

    outcome: list[Any] = []

    async def run(reactor: Any) -> None:
        try:
            outcome.append(await workload(reactor))
        except BaseException as e:
            outcome.append(e)

    with contextlib.suppress(SystemExit):
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    if not outcome:
        fail(args, "the workload ended without a result")
    if isinstance(outcome[0], BaseException):
        fail(args, outcome[0])
    emit(outcome[0])


def run_asyncio(
    args: argparse.Namespace, workload: Callable[[], Coroutine[Any, Any, dict[str, Any]]]
) -> None:
    """
    Run an asyncio client's workload and print its record (or its error).
    """
    import asyncio

    run_blocking(args, lambda: asyncio.run(workload()))


def run_blocking(args: argparse.Namespace, workload: Callable[[], dict[str, Any]]) -> None:
    """
    Run a workload that returns its record and print it (or its error).
    """
    try:
        record = workload()
    except BaseException as e:
        fail(args, e)
    emit(record)


def pick(args: argparse.Namespace, workloads: Mapping[str, _W], missing: str) -> _W:
    """
    The client's function for C{args.workload}; a workload the client does
    not have fails the run with C{missing} as the reason (the driver shows
    such a workload as n/a and never runs it).
    """
    workload = workloads.get(args.workload)
    if workload is None:
        fail(args, f"{args.workload}: {args.client} {missing}")
    return workload
