"""
The benchmark driver: every client on every workload, in turn, for several
rounds, each round starting one client further down the list (A B C D, B C
D A, ...); then a Markdown table of medians with ratios to the best peer,
and a PNG bar chart.

    python -m bench.run                      # everything, 3 rounds
    python -m bench.run --rounds 5 --workloads publish,consume
    python -m bench.run --clients txamqp_next --count-scale 0.01

Each run is a separate process (C{python -m bench.client_<name>}), so its
CPU time is its own.  Results go to C{bench/results/<date>.md}, C{.png} and
C{.json} (or C{--output-dir}).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import BROKER_URL, DEFAULTS, WORKLOADS

#: client script name -> the label in tables, and the distribution to ask
#: for its version
CLIENTS: dict[str, tuple[str, str]] = {
    "txamqp_next": ("txamqp_next", "txamqp-next"),
    "txamqp": ("txAMQP", "txAMQP"),
    "pika": ("pika-Twisted", "pika"),
    "aiormq": ("aiormq", "aiormq"),
    "puka": ("puka", "puka"),
    "floor": ("floor (stdlib, pre-encoded)", ""),
    "floor_twisted": ("floor on Twisted (pre-encoded)", ""),
}
OURS = "txamqp_next"
#: clients shown for reference only, never peers: not in the *vs best peer*
#: ratios nor in the targets.  C{floor} is a minimal standard-library client
#: with pre-encoded frames: about what the broker allows on this machine.
#: C{floor_twisted} is the floor's frames and parsing driven by Twisted's
#: reactor, for C{rpc}: what the reactor alone costs a round trip.
REFERENCE_ONLY = frozenset({"floor", "floor_twisted"})
#: workload -> client -> why that client has no such workload: shown as
#: "n/a" in the table, neither run nor counted as a failure
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    # puka is here as the anchor for many synchronous calls at once
    workload: {"puka": "a peer for declare only"}
    for workload in ("publish", "confirm", "consume", "rpc", "large", "thrift")
}
NOT_APPLICABLE["declare"] = {}
for _workload in ("publish", "confirm", "consume", "large", "declare", "thrift"):
    NOT_APPLICABLE[_workload]["floor_twisted"] = "a reference for rpc only"
NOT_APPLICABLE["thrift"].update(pika="no Thrift transport", aiormq="no Thrift transport")

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated (default all)"
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated (default all)"
    )
    parser.add_argument(
        "--count-scale",
        type=float,
        default=1.0,
        help="multiply every workload's message count (default 1: the counts of the issue)",
    )
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds one client run may take"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.workloads = name_list(parser, args.workloads, WORKLOADS, "workload")
    args.clients = name_list(parser, args.clients, list(CLIENTS), "client")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.count_scale <= 0:
        parser.error("--count-scale must be positive")
    return args


def name_list(parser: argparse.ArgumentParser, text: str, known: list[str], what: str) -> list[str]:
    """
    The comma-separated names in C{text}, each one of C{known}; any other,
    or none at all, ends the command line with an error naming C{what}.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        wrong = ", ".join(unknown) or "(none)"
        parser.error(f"unknown {what} {wrong}; pick from {', '.join(known)}")
    return names


def count_for(workload: str, scale: float) -> int:
    return max(1, round(DEFAULTS[workload][0] * scale))


def run_one(
    client: str, workload: str, count: int, size: int, url: str, timeout: float
) -> dict[str, Any]:
    """
    Run one client on one workload in its own process.

    @return: its JSON record; on any failure a record with C{error}; for a
        client without such a workload (L{NOT_APPLICABLE}) a record with
        C{na}, the reason, and nothing is run.
    """
    argv = [
        sys.executable,
        "-m",
        f"bench.client_{client}",
        "--workload",
        workload,
        "--count",
        str(count),
        "--size",
        str(size),
        "--url",
        url,
    ]
    base = {"workload": workload, "client": client, "count": count, "size": size}
    reason = NOT_APPLICABLE.get(workload, {}).get(client)
    if reason is not None:
        return {**base, "na": reason}
    return run_script(argv, base, timeout)


def run_script(argv: list[str], base: dict[str, Any], timeout: float) -> dict[str, Any]:
    """
    Run a benchmark script that prints its record as a JSON line.

    @param base: what the record says of the run whatever happens.
    @return: C{base} updated with the script's last JSON line; on a
        timeout, a missing line or a non-zero exit, with C{error}.
    """
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out after {timeout:.0f}s"}
    record: dict[str, Any] | None = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            break
    if record is None:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {**base, "error": f"no result: {tail[0][:300]}"}
    if proc.returncode != 0 and "error" not in record:
        record["error"] = f"exit status {proc.returncode}"
    return {**base, **record}


def environment(url: str) -> dict[str, str]:
    """
    The date, machine, Python, broker and client versions of this run.
    """
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "rabbitmq": broker_version(url),
    }
    for client, (label, dist) in CLIENTS.items():
        if client in REFERENCE_ONLY:
            continue
        try:
            env[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            env[label] = "not installed"
    env["Twisted"] = metadata.version("Twisted")
    return env


def broker_version(url: str) -> str:
    try:
        import pika

        conn = pika.BlockingConnection(pika.URLParameters(url))
        props = conn._impl.server_properties
        conn.close()
        version = props.get("version", b"?")
        product = props.get("product", b"broker")
        decode = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
        return f"{decode(product)} {decode(version)}"
    except Exception as e:
        return f"unknown ({type(e).__name__})"


def run_order(clients: list[str], round_no: int) -> list[str]:
    """
    The order the clients run in round C{round_no} (from 1): the list
    rotated by one more place each round, so that no client always runs
    first after a workload switch or always last in a round on a machine
    whose speed drifts.
    """
    shift = (round_no - 1) % len(clients) if clients else 0
    return clients[shift:] + clients[:shift]


def _median(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if key in r]
    return statistics.median(values) if values else None


def summarise(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """
    Medians per (workload, client) over the runs that worked, with the
    failures' errors.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["workload"], r["client"]), []).append(r)
    summary = {}
    for key, runs in groups.items():
        ok = [r for r in runs if "error" not in r and "na" not in r]
        summary[key] = {
            "na": runs[0].get("na"),
            "runs": len(runs),
            "ok": len(ok),
            "errors": [r["error"] for r in runs if "error" in r],
            "msgs_per_s": _median(ok, "msgs_per_s"),
            "cpu_us_per_msg": _median(ok, "cpu_us_per_msg"),
            "broker_cpu_us_per_msg": _median(ok, "broker_cpu_us_per_msg"),
            "p50_us": _median(ok, "p50_us"),
            "p99_us": _median(ok, "p99_us"),
            "mb_per_s": _median(ok, "mb_per_s"),
            "concurrent_per_s": _median(ok, "concurrent_per_s"),
            "concurrent_cpu_us": _median(ok, "concurrent_cpu_us"),
            "concurrent_broker_cpu_us": _median(ok, "concurrent_broker_cpu_us"),
            "busy": statistics.median([r["cpu_s"] / r["wall_s"] for r in ok]) if ok else None,
            "count": runs[0]["count"],
            "size": runs[0]["size"],
            "by_round": {r["round"]: r for r in ok if "round" in r},
        }
    return summary


def best_peer(
    summary: dict[tuple[str, str], dict[str, Any]], workload: str, clients: list[str], key: str
) -> float | None:
    """
    The best median of C{key} among the peers (highest msgs/s, lowest CPU):
    neither our client nor the L{REFERENCE_ONLY} ones.
    """
    values = [
        summary[(workload, c)][key]
        for c in clients
        if c != OURS
        and c not in REFERENCE_ONLY
        and (workload, c) in summary
        and summary[(workload, c)][key] is not None
    ]
    if not values:
        return None
    return min(values) if key == "cpu_us_per_msg" else max(values)


def shown(clients: list[str]) -> list[str]:
    """
    C{clients} in the order of the table and chart: the L{REFERENCE_ONLY}
    ones last.
    """
    return sorted(clients, key=lambda c: c in REFERENCE_ONLY)


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _busy(s: dict[str, Any]) -> str:
    if s["busy"] is None:
        return "-"
    return f"{s['busy'] * 100:.0f}%"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def markdown(
    summary: dict[tuple[str, str], dict[str, Any]],
    args: argparse.Namespace,
    env: dict[str, str],
    chart: str | None,
) -> str:
    lines = ["# txamqp_next benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in env.items()]
    lines += [
        f"- rounds: {args.rounds}, clients in turn, each round starting one further "
        f"down the list; count scale {args.count_scale:g}",
        "",
        "Medians over the rounds.  *msgs/s* is wall-clock throughput (round trips/s for "
        "`rpc`, queues/s for `declare`); *CPU us/msg* is the client process's user + system "
        "time per message (`resource.getrusage`).  *vs best peer* divides by the best "
        "other client's median (highest msgs/s, lowest CPU).  *busy* is the share of "
        "one core the client used (CPU time / wall time): near 100% the client is the "
        "limit, well below it the broker or the round trips are.  *broker CPU* is the "
        "broker's own user + system time per message over the same measured span "
        "(`/proc/<pid>/stat` of its `beam.smp`): what the broker spent serving that client.",
        "",
        "| workload | client | msgs/s | vs best peer | CPU us/msg | vs best peer | busy | "
        "broker CPU us/msg | extra | runs ok |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for workload in args.workloads:
        best_rate = best_peer(summary, workload, args.clients, "msgs_per_s")
        best_cpu = best_peer(summary, workload, args.clients, "cpu_us_per_msg")
        for client in shown(args.clients):
            s = summary.get((workload, client))
            if s is None:
                continue
            label = CLIENTS[client][0]
            if client == OURS:
                label = f"**{label}**"
            elif client in REFERENCE_ONLY:
                label = f"*{label}, reference*"
            if s["na"] is not None:
                lines.append(f"| {workload} | {label} | n/a | - | - | - | - | - | {s['na']} | - |")
                continue
            if s["ok"] == 0:
                error = s["errors"][0].replace("|", "/") if s["errors"] else "?"
                lines.append(
                    f"| {workload} | {label} | failed | - | - | - | - | - | {error[:120]} "
                    f"| 0/{s['runs']} |"
                )
                continue
            extra = ""
            if workload == "rpc":
                extra = f"p50 {_fmt(s['p50_us'])} us, p99 {_fmt(s['p99_us'])} us"
            elif workload == "thrift":
                extra = (
                    f"sequential, p50 {_fmt(s['p50_us'])} us, p99 {_fmt(s['p99_us'])} us; "
                    f"concurrent {_fmt(s['concurrent_per_s'])} calls/s at "
                    f"{_fmt(s['concurrent_cpu_us'], 1)} us CPU/call"
                )
                if s["concurrent_broker_cpu_us"] is not None:
                    extra += f", broker {_fmt(s['concurrent_broker_cpu_us'], 1)} us/call"
            elif workload == "large":
                extra = f"{_fmt(s['mb_per_s'], 1)} MB/s"
            if s["errors"]:
                extra += f" ({len(s['errors'])} failed: {s['errors'][0][:80]})".replace("|", "/")
            lines.append(
                f"| {workload} | {label} | {_fmt(s['msgs_per_s'])} | "
                f"{_ratio(s['msgs_per_s'], best_rate)} | {_fmt(s['cpu_us_per_msg'], 1)} | "
                f"{_ratio(s['cpu_us_per_msg'], best_cpu)} | {_busy(s)} | "
                f"{_fmt(s['broker_cpu_us_per_msg'], 1)} | {extra} | "
                f"{s['ok']}/{s['runs']} |"
            )
    if REFERENCE_ONLY.intersection(args.clients):
        lines += [
            "",
            "The *floor* row is a reference, not a peer: a minimal client on Python's "
            "standard library (`bench/client_floor.py`, blocking sockets, every frame it "
            "can encoded before the measured part), about the least client CPU any "
            "client could spend, so its msgs/s is about what the broker allows here.  The "
            "*floor on Twisted* row (`bench/client_floor_twisted.py`, `rpc` only) is the "
            "same frames driven by Twisted's reactor: what the reactor itself adds to a "
            "round trip.  On `thrift` the floor does the AMQP work of txamqp_next's Thrift "
            "calls (the same exchanges, flags, properties, confirms and acks) with Thrift "
            "messages encoded beforehand.  Reference rows are left out of every other row's "
            "*vs best peer*; the targets below measure against the floor.",
        ]
    target_lines = targets(summary, args)
    if target_lines:
        lines += [
            "",
            *target_lines,
            "",
            "*measured* is the ratio of the two medians, which *met* judges; *per round* is "
            "the median of the ratios within each round (its two runs are minutes apart, "
            "not the whole run's length, so a drift in the machine's speed moves it less), "
            "with the number of rounds.  *the floor's own* is the same ratio for the floor "
            "where it does the same AMQP work as txamqp_next (`thrift`): a bound the floor "
            "misses is beyond what the broker allows that work here.",
            "",
        ]
    else:
        lines.append("")
    counts = ", ".join(_count_text(summary, w, args) for w in args.workloads)
    lines += [f"Counts: {counts}.", ""]
    if "thrift" in args.workloads:
        lines += [
            "`thrift`: *msgs/s* and *CPU us/msg* are the sequential calls' (each waits "
            "for its reply); the concurrent calls (all in flight at once) are under "
            "*extra*.  Client and server run in the one measured process, so the CPU "
            "time is both sides'.",
            "",
        ]
    if chart:
        lines += [f"![msgs/s per workload and client]({chart})", ""]
    return "\n".join(lines)


def _count_text(
    summary: dict[tuple[str, str], dict[str, Any]], workload: str, args: argparse.Namespace
) -> str:
    count = summary_count(summary, workload, args)
    if workload == "declare":
        return f"`declare` {count:,} queues"
    if workload == "thrift":
        size = DEFAULTS[workload][1]
        return f"`thrift` {count:,} sequential + {count:,} concurrent calls x {size:,} B"
    return f"`{workload}` {count:,} x {DEFAULTS[workload][1]:,} B"


def summary_count(
    summary: dict[tuple[str, str], dict[str, Any]], workload: str, args: argparse.Namespace
) -> int:
    for client in args.clients:
        s = summary.get((workload, client))
        if s is not None:
            return int(s["count"])
    return count_for(workload, args.count_scale)


#: the speed targets: (workload, what, client measured against, key,
#: bound, at least?) -- ours / theirs must be at least (or at most) the
#: bound; C{("rpc", "p50_us")} as the client means the floor's rpc p50
TARGETS: list[tuple[str, str, str, str, float, bool]] = [
    *[
        row
        for workload in ("publish", "confirm", "consume")
        for row in (
            (workload, "msgs/s vs floor", "floor", "msgs_per_s", 0.9, True),
            (workload, "CPU/msg vs pika-Twisted", "pika", "cpu_us_per_msg", 0.25, False),
        )
    ],
    ("rpc", "round trips/s vs floor", "floor", "msgs_per_s", 0.95, True),
    ("rpc", "CPU/round trip vs floor", "floor", "cpu_us_per_msg", 1.5, False),
    ("large", "MB/s vs floor", "floor", "mb_per_s", 0.9, True),
    ("large", "CPU/MiB vs floor", "floor", "cpu_us_per_msg", 1.5, False),
    ("thrift", "sequential calls/s vs txAMQP", "txamqp", "msgs_per_s", 3.0, True),
    ("thrift", "concurrent calls/s vs txAMQP", "txamqp", "concurrent_per_s", 5.0, True),
    ("thrift", "p50 vs the floor's rpc p50", "floor:rpc", "p50_us", 1.3, False),
    ("declare", "queues/s vs puka", "puka", "msgs_per_s", 1.5, True),
]
#: the workloads whose targets the table also judges for the floor, which
#: does the same AMQP work there as txamqp_next (its Thrift calls' on
#: C{thrift}): a bound the floor does not reach is beyond what the broker
#: allows that work on this machine, whatever the client
FLOOR_SAME_WORK = frozenset({"thrift"})


def targets(summary: dict[tuple[str, str], dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """
    The issue's speed targets (L{TARGETS}) that this run can judge, met or
    not: each needs our client and the one it is measured against.
    """
    if OURS not in args.clients:
        return []
    lines = [
        "| target | measured | per round | met | the floor's own |",
        "|---|---:|---:|---|---:|",
    ]
    for workload, what, against, key, bound, at_least in TARGETS:
        their_workload = workload
        if ":" in against:
            against, their_workload = against.split(":")
        if workload not in args.workloads or their_workload not in args.workloads:
            continue
        ours = summary.get((workload, OURS))
        theirs = summary.get((their_workload, against))
        if not ours or not theirs or not ours["ok"] or not theirs["ok"]:
            continue
        if ours.get(key) is None or not theirs.get(key):
            continue
        ratio = ours[key] / theirs[key]
        met = ratio >= bound if at_least else ratio <= bound
        sign = ">=" if at_least else "<="
        floor = summary.get((workload, "floor"))
        floors = "-"
        if workload in FLOOR_SAME_WORK and floor and floor["ok"] and floor.get(key):
            floors = f"{floor[key] / theirs[key]:.2f}x"
        lines.append(
            f"| {workload}: {what} {sign} {bound:g}x | {ratio:.2f}x | "
            f"{_per_round(ours, theirs, key)} | {'yes' if met else 'no'} | {floors} |"
        )
    return lines if len(lines) > 2 else []


def _per_round(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> str:
    """
    The median over the rounds of C{ours / theirs} within each round, with
    the rounds it is taken over: both runs of a round are minutes apart
    rather than the whole run's length, so a drift of the machine's speed
    moves it less than the ratio of the medians.
    """
    paired = []
    for round_no, mine in ours.get("by_round", {}).items():
        other = theirs.get("by_round", {}).get(round_no)
        if other is not None and mine.get(key) is not None and other.get(key):
            paired.append(mine[key] / other[key])
    if not paired:
        return "-"
    return f"{statistics.median(paired):.2f}x ({len(paired)})"


def plot(
    summary: dict[tuple[str, str], dict[str, Any]], args: argparse.Namespace, path: Path
) -> None:
    """
    A bar chart of median msgs/s, one panel per workload (their scales
    differ by orders of magnitude).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = args.workloads
    cols = min(3, len(workloads))
    rows = (len(workloads) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    colors = {
        "txamqp_next": "#1f77b4",
        "txamqp": "#7f7f7f",
        "pika": "#ff7f0e",
        "aiormq": "#2ca02c",
        "floor": "#d9d9d9",
        "floor_twisted": "#bdbdbd",
        "puka": "#9467bd",
    }
    for ax, workload in zip(axes.flat, workloads, strict=False):
        labels, values, bar_colors = [], [], []
        notes = []
        for client in shown(args.clients):
            s = summary.get((workload, client))
            labels.append(f"{client} (ref.)" if client in REFERENCE_ONLY else CLIENTS[client][0])
            values.append((s or {}).get("msgs_per_s") or 0)
            bar_colors.append(colors.get(client, "#999999"))
            notes.append("n/a" if s is not None and s["na"] is not None else "failed")
        bars = ax.bar(range(len(labels)), values, color=bar_colors)
        for bar, client in zip(bars, shown(args.clients), strict=True):
            if client in REFERENCE_ONLY:
                bar.set_hatch("//")
                bar.set_edgecolor("#555555")
        for bar, value, note in zip(bars, values, notes, strict=True):
            ax.annotate(
                f"{value:,.0f}" if value else note,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        unit = {
            "rpc": "round trips/s",
            "declare": "queues/s",
            "thrift": "sequential calls/s",
        }.get(workload, "msgs/s")
        ax.set_title(f"{workload} ({unit})", fontsize=9)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7, rotation=15)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylim(0, max(values or [1]) * 1.2 or 1)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment(args.url)
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for workload in args.workloads:
            count = count_for(workload, args.count_scale)
            size = DEFAULTS[workload][1]
            for client in run_order(args.clients, round_no):
                record = run_one(client, workload, count, size, args.url, args.timeout)
                record["round"] = round_no
                records.append(record)
                if not args.quiet:
                    shown = (
                        record.get("error")
                        or record.get("na")
                        or (
                            f"{record['msgs_per_s']:,.0f} msgs/s, "
                            f"{record['cpu_us_per_msg']:.1f} us CPU/msg"
                        )
                    )
                    print(
                        f"round {round_no} {workload:8} {client:12} {shown}",
                        file=sys.stderr,
                        flush=True,
                    )
    env["duration"] = f"{time.monotonic() - started:.0f} s"
    summary = summarise(records)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%S")
    chart_path = args.output_dir / f"{stem}.png"
    plot(summary, args, chart_path)
    md_path = args.output_dir / f"{stem}.md"
    md_path.write_text(markdown(summary, args, env, chart_path.name))
    (args.output_dir / f"{stem}.json").write_text(
        json.dumps({"environment": env, "records": records}, indent=1)
    )
    print(md_path.read_text())
    print(f"wrote {md_path}, {chart_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
