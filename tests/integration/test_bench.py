# -*- test-case-name: tests.integration.test_bench -*-
"""
The benchmark keeps working: its driver runs every workload with our client,
and with the floor reference client, on tiny counts against the real broker,
reports a client that fails, and never counts the floor as a peer.
The full benchmark (C{./scripts/dev bench}) is not part of the suite.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bench import client_floor, run
from bench.common import WORKLOADS, BenchError, body, check_body
from tests.integration.broker import BROKER
from tests.integration.drivers import ROOT, run_driver, run_module


def tiny_run(client: str) -> Path:
    """
    Run the driver on one client, one round, at 0.5% of the issue's counts,
    and check it succeeded.

    @return: the output folder (table, chart and raw records).
    """
    argv = ["--clients", client, "--rounds", "1", "--count-scale", "0.005"]
    return run_driver("bench.run", "bench-test-", argv)


class BenchDriverTests(SynchronousTestCase):
    """
    C{python -m bench.run} on a tiny count, our client only.
    """

    def test_every_workload_runs_and_verifies(self) -> None:
        """
        One round of every workload at 0.5% of the issue's counts ends with a
        result for each, a table, a chart and the raw records, and no
        failure.
        """
        out = tiny_run("txamqp_next")
        [raw] = out.glob("*.json")
        records = json.loads(raw.read_text())["records"]
        self.assertEqual([r["workload"] for r in records], WORKLOADS)
        for record in records:
            self.assertNotIn("error", record, record)
            self.assertGreater(record["msgs_per_s"], 0)
            self.assertGreater(record["cpu_us_per_msg"], 0)
        by_workload = {r["workload"]: r for r in records}
        self.assertEqual(by_workload["publish"]["count"], 500)
        self.assertIn("p99_us", by_workload["rpc"])
        self.assertIn("mb_per_s", by_workload["large"])
        self.assertEqual(by_workload["thrift"]["count"], 10)
        self.assertIn("p99_us", by_workload["thrift"])
        self.assertGreater(by_workload["thrift"]["concurrent_per_s"], 0)
        [table] = out.glob("*.md")
        text = table.read_text()
        for workload in WORKLOADS:
            self.assertIn(f"| {workload} | **txamqp_next** |", text)
        self.assertNotIn("failed", text.split("| target |")[0])
        self.assertIn("rabbitmq", text.lower())
        [chart] = out.glob("*.png")
        self.assertEqual(chart.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_floor_runs_and_verifies(self) -> None:
        """
        The floor reference client runs every workload at 0.5% of the
        issue's counts without a failure (C{thrift}: the AMQP work of
        txamqp_next's Thrift calls, sequential and concurrent), and the
        table labels its rows as a reference.
        """
        out = tiny_run("floor")
        [raw] = out.glob("*.json")
        records = {r["workload"]: r for r in json.loads(raw.read_text())["records"]}
        self.assertEqual(list(records), WORKLOADS)
        for record in records.values():
            self.assertNotIn("error", record, record)
            self.assertEqual(record["client"], "floor")
            self.assertGreater(record["msgs_per_s"], 0)
        self.assertEqual(records["consume"]["count"], 500)
        self.assertIn("p99_us", records["rpc"])
        self.assertIn("mb_per_s", records["large"])
        self.assertEqual(records["thrift"]["count"], 10)
        self.assertGreater(records["thrift"]["p50_us"], 0)
        self.assertGreater(records["thrift"]["concurrent_per_s"], 0)
        [table] = out.glob("*.md")
        text = table.read_text()
        self.assertIn("| publish | *floor (stdlib, pre-encoded), reference* |", text)
        self.assertIn("| thrift | *floor (stdlib, pre-encoded), reference* | ", text)
        self.assertNotIn("| thrift | *floor (stdlib, pre-encoded), reference* | n/a |", text)
        self.assertNotIn("failed", text)

    def test_floor_on_twisted_runs_rpc_only(self) -> None:
        """
        The floor on Twisted's reactor runs C{rpc} (checking every reply)
        and shows as n/a, as a reference, for the other workloads.
        """
        out = tiny_run("floor_twisted")
        [raw] = out.glob("*.json")
        records = {r["workload"]: r for r in json.loads(raw.read_text())["records"]}
        self.assertEqual(list(records), WORKLOADS)
        self.assertNotIn("error", records["rpc"], records["rpc"])
        self.assertEqual(records["rpc"]["count"], 25)
        self.assertIn("p50_us", records["rpc"])
        for workload, record in records.items():
            if workload != "rpc":
                self.assertEqual(record["na"], "a reference for rpc only")
        text = next(out.glob("*.md")).read_text()
        self.assertIn("| rpc | *floor on Twisted (pre-encoded), reference* |", text)

    def test_puka_runs_declare_only(self) -> None:
        """
        puka, the peer for many calls at once, runs C{declare} (checking
        every queue name) and shows as n/a for the other workloads.
        """
        out = tiny_run("puka")
        [raw] = out.glob("*.json")
        records = {r["workload"]: r for r in json.loads(raw.read_text())["records"]}
        self.assertEqual(list(records), WORKLOADS)
        self.assertNotIn("error", records["declare"], records["declare"])
        self.assertEqual(records["declare"]["count"], 5)
        self.assertGreater(records["declare"]["msgs_per_s"], 0)
        for workload, record in records.items():
            if workload != "declare":
                self.assertEqual(record["na"], "a peer for declare only")

    def test_failing_client_is_reported(self) -> None:
        """
        A client run that cannot connect comes back as a failed record with
        its error, and the table shows it as failed rather than dropping it.
        """
        record = run.run_one("txamqp_next", "declare", 5, 0, "amqp://guest:guest@127.0.0.1:1/", 60)
        self.assertIn("error", record)
        self.assertEqual(record["client"], "txamqp_next")
        args = run.parse_args(["--workloads", "declare", "--clients", "txamqp_next,pika"])
        summary = run.summarise([record])
        text = run.markdown(summary, args, {"date": "today"}, None)
        self.assertIn("| declare | **txamqp_next** | failed |", text)
        self.assertIn("0/1", text)

    def test_client_without_thrift_is_not_applicable(self) -> None:
        """
        A client with no Thrift transport is not run on the C{thrift}
        workload: the table shows it as n/a, not failed, and the chart
        still renders.
        """
        record = run.run_one("pika", "thrift", 10, 100, BROKER, 60)
        self.assertEqual(record["na"], "no Thrift transport")
        self.assertNotIn("error", record)
        ours = {
            "workload": "thrift",
            "client": "txamqp_next",
            "count": 10,
            "size": 100,
            "wall_s": 0.01,
            "msgs_per_s": 1000.0,
            "cpu_s": 0.005,
            "cpu_us_per_msg": 500.0,
            "p50_us": 900.0,
            "p99_us": 1500.0,
            "concurrent_per_s": 4000.0,
            "concurrent_cpu_us": 200.0,
        }
        args = run.parse_args(["--workloads", "thrift", "--clients", "txamqp_next,pika"])
        summary = run.summarise([ours, record])
        text = run.markdown(summary, args, {"date": "today"}, None)
        self.assertIn("| thrift | pika-Twisted | n/a |", text)
        self.assertIn("concurrent 4,000 calls/s at 200.0 us CPU/call", text)
        self.assertNotIn("failed", text)
        chart = Path(tempfile.mkdtemp(prefix="bench-test-")) / "chart.png"
        run.plot(summary, args, chart)
        self.assertEqual(chart.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_peer_script_refuses_thrift(self) -> None:
        """
        Run by hand on C{thrift}, a client with no Thrift transport prints a
        failed record saying so and exits non-zero.
        """
        proc = subprocess.run(
            [sys.executable, "-m", "bench.client_aiormq", "--workload", "thrift", "--url", BROKER],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertNotEqual(proc.returncode, 0)
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(record["error"], "thrift: aiormq has no Thrift transport")


class ReferenceClientTests(SynchronousTestCase):
    """
    The floor client is shown, but it is not a peer.
    """

    def record(self, workload: str, client: str, rate: float, cpu: float) -> dict[str, object]:
        return {
            "workload": workload,
            "client": client,
            "count": 1000,
            "size": 100,
            "wall_s": 1000 / rate,
            "msgs_per_s": rate,
            "cpu_s": cpu * 1000 / 1e6,
            "cpu_us_per_msg": cpu,
        }

    def test_floors_are_run_by_default_last(self) -> None:
        """
        Without C{--clients}, every client runs, the two floors last.
        """
        self.assertEqual(run.parse_args([]).clients[-2:], ["floor", "floor_twisted"])
        self.assertEqual(run.REFERENCE_ONLY, {"floor", "floor_twisted"})

    def test_floor_is_not_a_peer(self) -> None:
        """
        The floor, faster and cheaper than every client, is neither the best
        peer of the ratios nor of the targets; its row is labelled a
        reference and the table says why.
        """
        summary = run.summarise(
            [
                self.record("publish", "txamqp_next", 60_000, 8.0),
                self.record("publish", "pika", 40_000, 16.0),
                self.record("publish", "floor", 120_000, 1.0),
                self.record("declare", "txamqp_next", 300, 300.0),
                self.record("declare", "pika", 250, 500.0),
                self.record("declare", "floor", 1000, 100.0),
                self.record("declare", "puka", 150, 100.0),
            ]
        )
        clients = ["txamqp_next", "pika", "puka", "floor"]
        self.assertEqual(run.best_peer(summary, "publish", clients, "msgs_per_s"), 40_000)
        self.assertEqual(run.best_peer(summary, "publish", clients, "cpu_us_per_msg"), 16.0)
        self.assertEqual(run.best_peer(summary, "declare", clients, "msgs_per_s"), 250)
        args = run.parse_args(["--workloads", "publish,declare", "--clients", ",".join(clients)])
        text = run.markdown(summary, args, {"date": "today"}, None)
        self.assertIn("| publish | **txamqp_next** | 60,000 | 1.50x | 8.0 | 0.50x |", text)
        self.assertIn(
            "| publish | *floor (stdlib, pre-encoded), reference* | 120,000 | 3.00x |", text
        )
        # the targets measure against the floor, pika-Twisted and puka
        self.assertIn("| publish: msgs/s vs floor >= 0.9x | 0.50x | - | no |", text)
        self.assertIn("| publish: CPU/msg vs pika-Twisted <= 0.25x | 0.50x | - | no |", text)
        self.assertIn("| declare: queues/s vs puka >= 1.5x | 2.00x | - | yes |", text)
        self.assertIn("The *floor* row is a reference, not a peer", text)

    def test_targets_across_workloads(self) -> None:
        """
        A target may compare two workloads: the Thrift p50 is measured
        against the floor's C{rpc} p50, and the concurrent Thrift rate
        against txAMQP's; a target whose rows are missing is left out.  The
        Thrift targets also show the floor's own ratio (its C{thrift} does
        the same AMQP work), the others none.
        """
        ours = self.record("thrift", "txamqp_next", 3000, 200.0)
        ours.update(p50_us=260.0, concurrent_per_s=10_000.0)
        theirs = self.record("thrift", "txamqp", 1000, 500.0)
        theirs.update(p50_us=700.0, concurrent_per_s=2500.0)
        floor_rpc = self.record("rpc", "floor", 5000, 50.0)
        floor_rpc.update(p50_us=200.0)
        floor = self.record("thrift", "floor", 2500, 100.0)
        floor.update(p50_us=220.0, concurrent_per_s=20_000.0)
        floor_publish = self.record("publish", "floor", 100_000, 1.0)
        ours_publish = self.record("publish", "txamqp_next", 95_000, 4.0)
        summary = run.summarise([ours, theirs, floor_rpc, floor, floor_publish, ours_publish])
        args = run.parse_args(
            ["--workloads", "publish,rpc,thrift", "--clients", "txamqp_next,txamqp,floor"]
        )
        self.assertEqual(
            run.targets(summary, args),
            [
                "| target | measured | per round | met | the floor's own |",
                "|---|---:|---:|---|---:|",
                "| publish: msgs/s vs floor >= 0.9x | 0.95x | - | yes | - |",
                "| thrift: sequential calls/s vs txAMQP >= 3x | 3.00x | - | yes | 2.50x |",
                "| thrift: concurrent calls/s vs txAMQP >= 5x | 4.00x | - | no | 8.00x |",
                "| thrift: p50 vs the floor's rpc p50 <= 1.3x | 1.30x | - | yes | 1.10x |",
            ],
        )

    def test_targets_per_round(self) -> None:
        """
        Beside the ratio of the medians, a target shows the median of the
        ratios within each round, pairing each of our runs with the
        reference's run of the same round (a round where either failed is
        left out); I{met} still judges the ratio of the medians.
        """
        records = []
        # the machine slows down over the run: each round, both clients
        # lose speed together; a third round where the floor failed
        for round_no, ours, floor in ((1, 90_000, 100_000), (2, 45_000, 50_000)):
            for client, rate in (("txamqp_next", ours), ("floor", floor)):
                record = self.record("publish", client, rate, 1.0)
                record["round"] = round_no
                records.append(record)
        ours3 = self.record("publish", "txamqp_next", 10_000, 1.0)
        ours3["round"] = 3
        records += [ours3, {**self.record("publish", "floor", 1, 1.0), "round": 3, "error": "x"}]
        summary = run.summarise(records)
        args = run.parse_args(["--workloads", "publish", "--clients", "txamqp_next,floor"])
        # medians: ours 45,000 (of 90,000, 45,000 and 10,000), the floor's
        # 75,000 (of its two runs that worked); within rounds 1 and 2: 0.9
        self.assertEqual(
            run.targets(summary, args)[2],
            "| publish: msgs/s vs floor >= 0.9x | 0.60x | 0.90x (2) | no | - |",
        )
        self.assertIn(
            "*per round* is the median of the ratios within each round",
            run.markdown(summary, args, {"date": "today"}, None),
        )

    def test_run_order_rotates(self) -> None:
        """
        Each round starts one client further down the list, so that every
        client runs in every place.
        """
        clients = ["a", "b", "c"]
        self.assertEqual(
            [run.run_order(clients, r) for r in (1, 2, 3, 4)],
            [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]],
        )
        self.assertEqual(run.run_order([], 2), [])

    def test_floor_is_shown_last(self) -> None:
        """
        Whatever the order of C{--clients}, the floor's rows come last.
        """
        self.assertEqual(
            run.shown(["floor", "pika", "txamqp_next"]), ["pika", "txamqp_next", "floor"]
        )

    def test_no_note_without_floor(self) -> None:
        """
        A table without the floor has no note about it.
        """
        summary = run.summarise([self.record("publish", "txamqp_next", 60_000, 8.0)])
        args = run.parse_args(["--workloads", "publish", "--clients", "txamqp_next"])
        self.assertNotIn("floor", run.markdown(summary, args, {"date": "today"}, None))


class FakeSocket:
    """
    Hands out C{data} in the given chunk sizes, and keeps what is sent.
    """

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.chunks = []
        pos = 0
        while pos < len(data):
            size = sizes[len(self.chunks) % len(sizes)]
            self.chunks.append(data[pos : pos + size])
            pos += size
        self.chunks.reverse()
        self.sent = b""

    def recv(self, _size: int) -> bytes:
        return self.chunks.pop() if self.chunks else b""

    def sendall(self, data: bytes) -> None:
        self.sent += bytes(data)


class FloorFramingTests(SynchronousTestCase):
    """
    The floor client's delivery parser, fed frames split anywhere.
    """

    def deliveries(self, count: int, size: int, frame_max: int) -> bytes:
        frames = []
        for i in range(count):
            deliver = (
                client_floor.shortstr(b"ctag")
                + struct.pack(">QB", i + 1, 0)
                + client_floor.shortstr(b"")
                + client_floor.shortstr(b"q")
            )
            frames.append(client_floor.method(client_floor.DELIVER, deliver))
            # a publish's content frames are a delivery's, after its method frame
            publish = client_floor.publish_frames(b"q", body(i, size), frame_max)
            frames.append(publish[publish.index(b"\x02\x00\x01") :])
        return b"".join(frames)

    def receive(self, data: bytes, sizes: list[int], count: int, size: int) -> FakeSocket:
        conn = object.__new__(client_floor.Connection)
        sock = FakeSocket(data, sizes)
        conn.sock = sock  # type: ignore[assignment]
        conn.buf, conn.pos = b"", 0
        client_floor.receive(conn, count, size, client_floor.ack_frames(count))
        return sock

    def test_split_anywhere(self) -> None:
        """
        Small and multi-frame bodies are all checked and acked in order
        whether the frames come whole, byte by byte, or in odd chunks.
        """
        for count, size in [(5, 100), (3, 1000)]:
            data = self.deliveries(count, size, frame_max=300)
            for sizes in ([len(data)], [1], [7, 3, 250], [299, 301]):
                sock = self.receive(data, sizes, count, size)
                self.assertEqual(sock.sent, client_floor.ack_frames(count), (size, sizes))

    def test_wrong_body_fails(self) -> None:
        """
        A body out of order fails the run.
        """
        data = self.deliveries(3, 100, frame_max=4096).replace(b"000000000001", b"000000000002")
        with self.assertRaises(BenchError):
            self.receive(data, [64], 3, 100)

    def test_broker_close_fails(self) -> None:
        """
        A connection the broker closes mid-run fails it.
        """
        data = self.deliveries(3, 100, frame_max=4096)
        with self.assertRaises(BenchError) as caught:
            self.receive(data[:-10], [64], 3, 100)
        self.assertIn("closed", str(caught.exception))


class ProfileTests(SynchronousTestCase):
    """
    C{python -m bench.profile} profiles a workload's measured part only.
    """

    def test_rpc_profile(self) -> None:
        """
        Profiling 20 round trips prints the run's record, the shares of the
        layers (the poller's wait, our core and adapter, Twisted) adding up
        to 100%, and the functions with the most own time.
        """
        lines = run_module("bench.profile", "--workload", "rpc", "--count", "20")
        self.assertEqual(json.loads(lines[0])["count"], 20)
        shares = {}
        for line in lines[2:]:
            if line.startswith("top "):
                break
            share, layer = line.split("%", 1)
            shares[layer.strip()] = float(share)
        self.assertLess(abs(sum(shares.values()) - 100), 1)
        for layer in ("waiting in epoll (the broker's turn)", "txamqp_next core (sans-IO)"):
            self.assertIn(layer, shares)
        self.assertIn("Twisted", shares)

    def test_layers(self) -> None:
        """
        Profile entries fall in the layer of their module.
        """
        from bench.profile import OTHER, layer_of

        self.assertEqual(
            layer_of("/x/txamqp_next/_frames.py", "read_frames"), "txamqp_next core (sans-IO)"
        )
        self.assertEqual(
            layer_of("<txamqp_next Basic.Deliver codec>", "decode"), "txamqp_next core (sans-IO)"
        )
        self.assertEqual(
            layer_of("/x/txamqp_next/channel.py", "basic_publish"), "txamqp_next adapter"
        )
        self.assertEqual(layer_of("/x/site-packages/twisted/internet/defer.py", "f"), "Twisted")
        self.assertEqual(
            layer_of("~", "<method 'send' of '_socket.socket' objects>"),
            "socket send/recv (kernel)",
        )
        self.assertEqual(layer_of("/x/bench/common.py", "check_body"), OTHER)


class AdapterBenchTests(SynchronousTestCase):
    """
    C{python -m bench.adapter}, the adapter's micro-benchmark (no broker),
    runs every case and checks what it fed and got.
    """

    def test_every_case(self) -> None:
        """
        Each case prints its CPU time per message; each asserts its count
        of messages handled (and C{rpc-serve} one write per reply).
        """
        output = run_module("bench.adapter", "--count", "200", "--repeat", "1")
        lines = dict(line.split(None, 1) for line in output)
        self.assertEqual(
            sorted(lines),
            sorted(["publish", "publish+props", "confirm", "deliver+ack", "rpc-serve"]),
        )
        for name, text in lines.items():
            value, unit = text.split()
            self.assertEqual(unit, "us/msg", name)
            self.assertGreater(float(value), 0, name)


class MeterTests(SynchronousTestCase):
    """
    The meter reads the broker's CPU time from C{/proc}, as it reads its
    own.
    """

    def test_process_cpu(self) -> None:
        """
        A process's CPU time read from C{/proc/<pid>/stat} is this process's
        own (user + system) to within a few clock ticks, and a process that
        does not exist reads as C{None}.
        """
        import resource

        from bench.common import process_cpu

        usage = resource.getrusage(resource.RUSAGE_SELF)
        read = process_cpu(os.getpid())
        assert read is not None
        self.assertLess(abs(read - (usage.ru_utime + usage.ru_stime)), 0.1)
        self.assertIsNone(process_cpu(2**22 + 1))

    def test_broker_found(self) -> None:
        """
        Without C{BENCH_BROKER_PID}, the meter reads the C{beam.smp}
        process that listens on the broker's port, even while other nodes
        (the fault tests' own) run beside it.
        """
        from bench.common import _listening_inodes, broker_pid

        self.assertNotIn("BENCH_BROKER_PID", os.environ)
        pid = broker_pid(BROKER)
        assert pid is not None
        with open(f"/proc/{pid}/comm") as f:
            self.assertEqual(f.read().strip(), "beam.smp")
        port = int(BROKER.rsplit(":", 1)[1].strip("/"))
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        self.assertTrue(any(f"socket:[{inode}]" in links for inode in _listening_inodes(port)))

    def test_broker_cpu_in_record(self) -> None:
        """
        With C{BENCH_BROKER_PID} naming a process, the meter measures that
        process's CPU time over its span, and the record gives it per
        message.
        """
        from bench import common

        os.environ["BENCH_BROKER_PID"] = str(os.getpid())
        self.addCleanup(os.environ.pop, "BENCH_BROKER_PID")
        meter = common.Meter()
        meter.start()
        sum(i * i for i in range(2_000_000))
        meter.stop()
        assert meter.broker_cpu is not None
        self.assertLess(abs(meter.broker_cpu - meter.cpu), 0.05)
        args = common.parse_args("txamqp_next", ["--workload", "rpc", "--count", "10"])
        record = common.result(args, meter)
        self.assertEqual(record["broker_cpu_us_per_msg"], round(meter.broker_cpu / 10 * 1e6, 2))


class BodyTests(SynchronousTestCase):
    """
    The bodies carry their index, so the checks catch loss and reordering.
    """

    def test_check_body(self) -> None:
        """
        A body passes only as its own index and size.
        """
        check_body(7, 100, body(7, 100))
        with self.assertRaises(BenchError):
            check_body(8, 100, body(7, 100))
        with self.assertRaises(BenchError):
            check_body(7, 101, body(7, 100))
        with self.assertRaises(BenchError):
            check_body(7, 100, body(7, 100)[:-1] + b"x")
