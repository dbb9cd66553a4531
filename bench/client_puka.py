"""
The benchmark's C{declare} workload with puka 0.0.8, the anchor for many
synchronous calls at once: puka gives every outstanding call a channel from
its pool, as its own headline example (queues declared in parallel, then
deleted) shows.  puka has only this workload here: it is a peer for
C{declare} alone.

    python -m bench.client_puka --workload declare --count 1000
"""

from __future__ import annotations

import argparse
from typing import Any

import puka

from bench import common
from bench.common import BenchError, Meter

CLIENT = "puka"


def declare(args: argparse.Namespace) -> dict[str, Any]:
    prefix = common.queue_name(CLIENT, "declare")
    names = [f"{prefix}-{i}" for i in range(args.count)]
    client = puka.Client(args.url)
    client.wait(client.connect())
    meter = Meter()
    meter.start()
    promises = [client.queue_declare(queue=name, exclusive=True) for name in names]
    for name, promise in zip(names, promises, strict=True):
        ok = client.wait(promise)
        if ok["queue"] != name:
            raise BenchError(f"declared {ok['queue']!r}, not {name!r}")
    promises = [client.queue_delete(queue=name) for name in names]
    for promise in promises:
        client.wait(promise)
    meter.stop()
    client.wait(client.close())
    return common.result(args, meter)


WORKLOADS = {"declare": declare}


def main(argv: list[str] | None = None) -> None:
    args = common.parse_args(CLIENT, argv)
    workload = common.pick(args, WORKLOADS, "is a peer for declare only")
    common.run_blocking(args, lambda: workload(args))


if __name__ == "__main__":
    main()
