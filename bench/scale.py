# -*- test-case-name: tests.integration.test_bench_scale -*-
"""
The scale benchmark's driver: every client on every kind (connections,
channels, consumers, queues) for 1, 10, 100 and 1,000 of it, each in its own
process, interleaved (A B C A B C ...) for several rounds; then a Markdown
table of medians, the issue's two scale targets met or not, and a PNG chart.

    python -m bench.scale                     # everything, 3 rounds
    python -m bench.scale --rounds 5 --kinds consumers --clients txamqp_next,pika
    python -m bench.scale --ns 1,10 --messages 200 --rounds 1   # a quick run

Each run is C{python -m bench.scale_<client> --kind K --n N} (see
L{bench.scale_common}).  Results go to C{bench/results/scale-<date>.md},
C{.png} and C{.json} (or C{--output-dir}).

RabbitMQ under the default limit of 1,024 open files takes at most 832
sockets, and running out of them can leave it broken (its memory monitor
dies), so the connections kind is not run above C{--max-connections}
(default 800): such runs show as n/a.  Give the broker more files (for
example C{ulimit -n 4096} before starting it) and pass
C{--max-connections 1000} to measure 1,000 connections.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BROKER_URL
from bench.run import RESULTS, environment, name_list, run_script
from bench.scale_common import KINDS, MESSAGES, NS, SIZE

#: client script name -> the label in tables
CLIENTS: dict[str, str] = {
    "txamqp_next": "txamqp_next",
    "pika": "pika-Twisted",
    "aiormq": "aiormq",
}
OURS = "txamqp_next"
#: the peer the memory target is measured against
REFERENCE = "pika"
#: the CPU per delivery may differ by this much between 1 and 1,000 consumers
FLAT = 0.20
#: memory per idle channel and per consumer: at most this share of pika's
MEMORY_SHARE = 0.5
#: what the table shows per run, medians over the rounds
KEYS = (
    "open_s",
    "open_cpu_s",
    "close_s",
    "close_cpu_s",
    "bytes_per_item",
    "cpu_us_per_delivery",
)
#: the memory figures the target is checked on: resident memory, and the
#: Python heap kept (from the traced runs)
MEMORY_KEYS = (("bytes_per_item", "resident memory"), ("traced_bytes_per_item", "Python heap"))
#: what the traced runs add: the Python heap kept per item, and its peak
TRACED_KEYS = ("traced_bytes_per_item", "traced_peak_per_item")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated (default all)")
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated (default all)"
    )
    parser.add_argument(
        "--ns", default=",".join(map(str, NS)), help="how many of each kind (default 1,10,100,1000)"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=MESSAGES,
        help=f"consumers: messages spread over the queues (default {MESSAGES:,})",
    )
    parser.add_argument("--size", type=int, default=SIZE, help=f"their size (default {SIZE})")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=800,
        help="the most connections the broker can take (default 800); above, n/a",
    )
    parser.add_argument(
        "--no-traced",
        dest="traced",
        action="store_false",
        help="no last round with tracemalloc (the Python heap per item)",
    )
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--timeout", type=float, default=600, help="seconds one run may take")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.kinds = name_list(parser, args.kinds, KINDS, "kind")
    args.clients = name_list(parser, args.clients, list(CLIENTS), "client")
    try:
        args.ns = sorted({int(n) for n in args.ns.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--ns: not a list of numbers: {args.ns!r}")
    if not args.ns or args.ns[0] < 1:
        parser.error("--ns must list numbers of at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.messages < 2:
        parser.error("--messages must be at least 2")
    return args


def not_applicable(kind: str, n: int, args: argparse.Namespace) -> str | None:
    """
    Why a run is not made, or C{None}.
    """
    if kind == "connections" and n > args.max_connections:
        return f"over --max-connections {args.max_connections} (the broker's sockets)"
    return None


def run_one(
    client: str, kind: str, n: int, args: argparse.Namespace, traced: bool = False
) -> dict[str, Any]:
    """
    Run one client on one kind and N in its own process.

    @param traced: trace the Python allocations (C{--traced}); the record
        is then used for its heap figures only.

    @return: its JSON record; on any failure a record with C{error}; for a
        run L{not_applicable} a record with C{na}, the reason, and nothing
        is run.
    """
    base: dict[str, Any] = {"workload": "scale", "kind": kind, "client": client, "n": n}
    reason = not_applicable(kind, n, args)
    if reason is not None:
        return {**base, "na": reason}
    argv = [sys.executable, "-m", f"bench.scale_{client}", "--kind", kind, "--n", str(n)]
    argv += ["--messages", str(args.messages), "--size", str(args.size), "--url", args.url]
    if traced:
        argv.append("--traced")
        base["traced"] = True
    return run_script(argv, base, args.timeout)


Summary = dict[tuple[str, int, str], dict[str, Any]]


def summarise(records: list[dict[str, Any]]) -> Summary:
    """
    Medians per (kind, N, client) over the runs that worked, with the
    failures' errors.
    """
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["kind"], r["n"], r["client"]), []).append(r)
    summary: Summary = {}
    for key, all_runs in groups.items():
        # the traced runs give the heap figures only: tracing slows them
        runs = [r for r in all_runs if not r.get("traced")] or all_runs
        ok = [r for r in runs if "error" not in r and "na" not in r and not r.get("traced")]
        traced = [r for r in all_runs if r.get("traced") and "error" not in r and "na" not in r]
        s: dict[str, Any] = {
            "na": runs[0].get("na"),
            "runs": len(runs),
            "ok": len(ok),
            "errors": [r["error"] for r in all_runs if "error" in r],
        }
        for k in KEYS:
            values = [r[k] for r in ok if k in r]
            s[k] = statistics.median(values) if values else None
        for k in TRACED_KEYS:
            values = [r[k] for r in traced if k in r]
            s[k] = statistics.median(values) if values else None
        summary[key] = s
    return summary


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.1f}"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(summary: Summary, args: argparse.Namespace) -> list[str]:
    lines = [
        "| kind | N | client | open ms | open CPU ms | close ms | close CPU ms | "
        "RSS B / item | heap B / item | heap peak B / item | CPU us / delivery | runs ok |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in args.kinds:
        for n in args.ns:
            for client in args.clients:
                s = summary.get((kind, n, client))
                if s is None:
                    continue
                label = f"**{CLIENTS[client]}**" if client == OURS else CLIENTS[client]
                head = f"| {kind} | {n:,} | {label} |"
                if s["na"] is not None:
                    lines.append(f"{head} n/a | - | - | - | {s['na']} | - | - | - | - |")
                    continue
                if s["ok"] == 0:
                    error = (s["errors"][0] if s["errors"] else "?").replace("|", "/")
                    lines.append(
                        f"{head} failed | - | - | - | {error[:120]} | - | - | - | 0/{s['runs']} |"
                    )
                    continue
                cpu = _num(s["cpu_us_per_delivery"], 1) if kind == "consumers" else ""
                note = ""
                if s["errors"]:
                    note = f" ({s['errors'][0][:60]})".replace("|", "/")
                lines.append(
                    f"{head} {_ms(s['open_s'])} | {_ms(s['open_cpu_s'])} | "
                    f"{_ms(s['close_s'])} | {_ms(s['close_cpu_s'])} | "
                    f"{_num(s['bytes_per_item'])} | {_num(s['traced_bytes_per_item'])} | "
                    f"{_num(s['traced_peak_per_item'])} | {cpu} | {s['ok']}/{s['runs']}{note} |"
                )
    return lines


def _value(summary: Summary, kind: str, n: int, client: str, key: str) -> float | None:
    s = summary.get((kind, n, client))
    if s is None or s["ok"] == 0:
        return None
    value: float | None = s[key]
    return value


def targets(summary: Summary, args: argparse.Namespace) -> list[tuple[str, str, bool | None]]:
    """
    The issue's scale targets: (target, what was measured, met); C{met} is
    C{None} when the runs it needs are missing or failed.
    """
    rows: list[tuple[str, str, bool | None]] = []
    if OURS not in args.clients:
        return rows
    low, high = args.ns[0], args.ns[-1]
    if "consumers" in args.kinds and high > low:
        first = _value(summary, "consumers", low, OURS, "cpu_us_per_delivery")
        last = _value(summary, "consumers", high, OURS, "cpu_us_per_delivery")
        name = f"txamqp_next CPU per delivery, {high:,} consumers vs {low:,}: within {FLAT:.0%}"
        if first and last is not None:
            ratio = last / first
            measured = f"{last:.1f} vs {first:.1f} us ({ratio:.2f}x)"
            rows.append((name, measured, abs(ratio - 1) <= FLAT))
        else:
            rows.append((name, "not measured", None))
    if REFERENCE in args.clients:
        for kind in ("channels", "consumers"):
            if kind not in args.kinds:
                continue
            for key, what in MEMORY_KEYS:
                if key in TRACED_KEYS and not args.traced:
                    continue
                s_ours = summary.get((kind, high, OURS))
                s_ref = summary.get((kind, high, REFERENCE))
                ours = s_ours[key] if s_ours else None
                ref = s_ref[key] if s_ref else None
                name = (
                    f"txamqp_next {what} per idle {kind[:-1]} ({high:,}): "
                    f"<= {MEMORY_SHARE:g}x pika-Twisted's"
                )
                if ours is not None and ref:
                    share = ours / ref
                    measured = f"{ours:,.0f} vs {ref:,.0f} B ({share:.2f}x)"
                    rows.append((name, measured, share <= MEMORY_SHARE))
                else:
                    rows.append((name, "not measured", None))
    return rows


def markdown(
    summary: Summary, args: argparse.Namespace, env: dict[str, str], chart: str | None
) -> str:
    lines = ["# txamqp_next scale benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in env.items()]
    lines += [
        f"- rounds: {args.rounds}, clients interleaved in each round; consumers: "
        f"{args.messages:,} messages x {args.size} B spread over the N queues",
        "",
        "Medians over the rounds.  *open* and *close*: wall and CPU time (user + system "
        "of the client process) to open all N at once and to close them all at once "
        "(consumers: `basic.consume` and `basic.cancel`; queues: `queue.declare` and "
        "`queue.delete`).  *RSS B / item*: the growth of resident memory "
        "(`/proc/self/statm`, after `gc.collect()`) from before opening to all N open "
        "and idle, divided by N (in pages of 4 KiB, so imprecise below N = 100).  "
        "*heap B / item*: the Python heap kept per item, and *heap peak*: the most it "
        "held while opening, per item (`tracemalloc`, in one more run of each, whose "
        "times are not used); resident memory follows the peak more than what is kept, "
        "as CPython seldom gives freed memory back.  "
        "*CPU us / delivery*: the client's CPU time from the end of the publishing "
        "(during which its event loop waited, so the deliveries were queued) to the "
        "last delivery, per delivery, acking each.",
        "",
        *table(summary, args),
        "",
    ]
    rows = targets(summary, args)
    if rows:
        lines += ["| target | measured | met |", "|---|---|---|"]
        for name, measured, met in rows:
            shown = "not measured" if met is None else ("yes" if met else "no")
            lines.append(f"| {name} | {measured} | {shown} |")
        lines.append("")
    if chart:
        lines += [f"![scale: time, memory and CPU against N]({chart})", ""]
    return "\n".join(lines)


def plot(summary: Summary, args: argparse.Namespace, path: Path) -> None:
    """
    Open time per kind (top row) and memory per item and CPU per delivery
    (bottom row) against N, one line per client, log scales.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"txamqp_next": "#1f77b4", "pika": "#ff7f0e", "aiormq": "#2ca02c"}
    panels: list[tuple[str, str, str, float]] = [
        (kind, "open_s", f"{kind}: open all (ms)", 1e3) for kind in args.kinds
    ]
    panels += [
        (kind, "bytes_per_item", f"{kind}: bytes / item", 1.0)
        for kind in args.kinds
        if kind != "queues"
    ]
    if "consumers" in args.kinds:
        panels.append(("consumers", "cpu_us_per_delivery", "consumers: CPU us / delivery", 1.0))
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows), squeeze=False)
    for ax, (kind, key, title, factor) in zip(axes.flat, panels, strict=False):
        for client in args.clients:
            points = [
                (n, value * factor)
                for n in args.ns
                if (value := _value(summary, kind, n, client, key)) is not None and value > 0
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=CLIENTS[client], color=colors.get(client))
        ax.set_xscale("log")
        if key != "cpu_us_per_delivery":
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("N", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment(args.url)
    for peer in ("txAMQP", "puka"):
        env.pop(peer, None)
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    rounds: list[int | str] = list(range(1, args.rounds + 1))
    if args.traced:
        rounds.append("traced")
    for round_no in rounds:
        traced = round_no == "traced"
        label = "traced " if traced else f"round {round_no}"
        for kind in args.kinds:
            for n in args.ns:
                for client in args.clients:
                    record = run_one(client, kind, n, args, traced=traced)
                    record["round"] = round_no
                    records.append(record)
                    if not args.quiet:
                        print(
                            f"{label} {kind:11} {n:5} {client:12} {_progress(record)}",
                            file=sys.stderr,
                            flush=True,
                        )
    env["duration"] = f"{time.monotonic() - started:.0f} s"
    summary = summarise(records)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = "scale-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%S")
    chart_path = args.output_dir / f"{stem}.png"
    plot(summary, args, chart_path)
    md_path = args.output_dir / f"{stem}.md"
    md_path.write_text(markdown(summary, args, env, chart_path.name))
    (args.output_dir / f"{stem}.json").write_text(
        json.dumps({"environment": env, "records": records}, indent=1)
    )
    print(md_path.read_text())
    for name, measured, met in targets(summary, args):
        verdict = "not measured" if met is None else ("met" if met else "MISSED")
        print(f"target {verdict}: {name}: {measured}", file=sys.stderr)
    print(f"wrote {md_path}, {chart_path}", file=sys.stderr)
    return 0


def _progress(record: dict[str, Any]) -> str:
    if "error" in record or "na" in record:
        return str(record.get("error") or record.get("na"))
    if record.get("traced"):
        return (
            f"heap {record['traced_bytes_per_item']:,} B/item, "
            f"peak {record['traced_peak_per_item']:,} B/item"
        )
    text = (
        f"open {record['open_s'] * 1e3:,.1f} ms, close {record['close_s'] * 1e3:,.1f} ms, "
        f"{record['bytes_per_item']:,} B/item"
    )
    if "cpu_us_per_delivery" in record:
        text += f", {record['cpu_us_per_delivery']:.1f} us CPU/delivery"
    return text


if __name__ == "__main__":
    sys.exit(main())
