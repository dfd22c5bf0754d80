"""A bounded load test of `xtremedistil serve` on loopback, with and without micro-batching, and a screenshot
of the web demo. Writes a section of docs/RESULTS.md.

    python benchmarks/serve_load.py RUN_DIR [--backend onnx-int8] [--duration 20] [--clients 16]

Each mode starts its own server (a child process), warms it up, then a fixed number of keep-alive clients
send the run's dev sentences (raw text, ``--texts`` per request) as fast as they are answered, for a fixed
time, and stop. Counted: sentences/s and requests/s answered inside the measured window, latency of each
request (p50/p95/p99, client side), errors (non-200 or failed connections), the server's peak RSS and its
mean texts per forward pass (from /metrics). The clients run in this process on the same two cores.
The screenshot needs Debian's chromium, and fonts for its scripts (fonts-noto-core, fonts-noto-cjk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from results import provenance, targets_table, write_section
from xtremedistil.data.sources import load_labeled_all
from xtremedistil.pipeline import run_config_of
from xtremedistil.segment import detokenize
from xtremedistil.student.saved import student_folder

ROOT = Path(__file__).resolve().parents[1]
TARGET_SENTENCES, TARGET_P95_MS = 2000, 50


def dev_texts(run: Path) -> list[str]:
    config = run_config_of(run)
    if config is None:
        raise SystemExit(f"{run}: not a run folder (no config.toml)")
    dev = load_labeled_all(config.data.labeled, seed=config.seed).split("dev")
    return [s.text or detokenize(s.words)[0] for s in dev]


def start_server(student: Path, port: int, backend: str, extra: list[str], log: Path) -> subprocess.Popen:
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
    server = subprocess.Popen(
        [sys.executable, "-m", "xtremedistil.cli", "serve", str(student), "--port", str(port)]
        + ["--backend", backend, *extra],
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server did not come up in 120 s; see {log}")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def client(port: int, bodies: list[tuple[bytes, int]], first: int, stop_at: float, out: list) -> None:
    """One keep-alive connection sending request after request until ``stop_at``; appends
    (start, end, status, texts) per request, status 0 for a failed connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = first
    try:
        while time.perf_counter() < stop_at:
            body, n = bodies[i % len(bodies)]
            i += 1
            head = (
                f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            start = time.perf_counter()
            try:
                writer.write(head + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                out.append((start, time.perf_counter(), 0, n))
                return
            out.append((start, time.perf_counter(), status, n))
    finally:
        writer.close()


async def load(port: int, bodies: list[tuple[bytes, int]], clients: int, warmup: float, duration: float):
    out: list[tuple[float, float, int, int]] = []
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + duration)
    step = max(1, len(bodies) // clients)
    await asyncio.gather(*(client(port, bodies, k * step, window[1], out) for k in range(clients)))
    return out, window


def measure(run: Path, mode: str, extra: list[str], args, bodies, port: int) -> dict:
    log = run / f"serve-load-{mode}.log"
    server = start_server(student_folder(run), port, args.backend, extra, log)
    try:
        before = scrape(port)
        records, (w0, w1) = asyncio.run(load(port, bodies, args.clients, args.warmup, args.duration))
        after = scrape(port)
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(60)
    inside = [r for r in records if r[0] >= w0 and r[1] <= w1]
    ok = [r for r in inside if r[2] == 200]
    latency = np.array([(r[1] - r[0]) * 1000 for r in ok])
    passes = after["xtremedistil_batch_texts_count"] - before.get("xtremedistil_batch_texts_count", 0)
    texts = after["xtremedistil_batch_texts_sum"] - before.get("xtremedistil_batch_texts_sum", 0)
    return {
        "mode": mode,
        "sentences_per_s": sum(r[3] for r in ok) / (w1 - w0),
        "requests_per_s": len(ok) / (w1 - w0),
        "p50_ms": float(np.percentile(latency, 50)),
        "p95_ms": float(np.percentile(latency, 95)),
        "p99_ms": float(np.percentile(latency, 99)),
        "errors": sum(r[2] != 200 for r in records),
        "requests": len(records),
        "peak_rss_mb": rss,
        "texts_per_pass": texts / passes if passes else 0.0,
    }


def breakdown(run: Path, backend: str, sentences: list[str], batch: int = 64) -> dict[str, float]:
    """In this process, no HTTP: seconds per sentence in each step of ``predict`` over the dev sentences in
    batches of ``batch`` (after one warm-up pass), as the server runs a full forward pass."""
    from xtremedistil.student.saved import load_student
    from xtremedistil.training import setup_torch

    setup_torch(0, 0)
    predictor = load_student(student_folder(run), backend)
    timings: dict[str, float] = {}
    for record in (None, timings):
        for i in range(0, len(sentences), batch):
            predictor.predict(sentences[i : i + batch], batch, record)
    return {step: seconds / len(sentences) for step, seconds in timings.items()}


def screenshot(run: Path, args, port: int, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("--screenshot needs Debian's chromium (apt-get install chromium)")
    server = start_server(student_folder(run), port, args.backend, [], run / "serve-demo.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 960, "height": 720}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#legend span")
            page.click("button.example:has-text('all of them')")
            page.wait_for_selector("body[data-state=done]")
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "run", type=Path, help="a finished distil run folder (its dev sentences are the load)"
    )
    parser.add_argument("--backend", default="onnx-int8", help="the server's --backend")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--texts", type=int, nargs="+", default=[8], help="sentences per request (rows)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--screenshot", type=Path, help="also save the demo page, tagged, as this PNG")
    parser.add_argument(
        "--demo-run", type=Path, help="the run whose student the screenshot shows (default: RUN)"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    sentences = dev_texts(args.run)
    steps = breakdown(args.run, args.backend, sentences)
    print(json.dumps(steps), flush=True)
    rows = []
    for n in args.texts:
        bodies = [
            (
                json.dumps({"texts": sentences[i : i + n]}, ensure_ascii=False).encode(),
                len(sentences[i : i + n]),
            )
            for i in range(0, len(sentences) - n + 1, n)
        ]
        for mode, extra in (("micro-batching", []), ("no batching", ["--no-batching"])):
            row = measure(args.run, mode.replace(" ", "-"), extra, args, bodies, args.port)
            row.update(mode=mode, texts_per_request=n)
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.run / "serve-load.json").write_text(
        json.dumps({"rows": rows, "steps": steps}, indent=2), encoding="utf-8"
    )
    if args.screenshot:
        screenshot(args.demo_run or args.run, args, args.port, args.screenshot)

    table = [
        "| mode | sentences / request | sentences/s | requests/s | latency ms p50 / p95 / p99 | errors | "
        "texts per forward pass | server peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['mode']} | {r['texts_per_request']} | {r['sentences_per_s']:,.0f} | {r['requests_per_s']:,.0f} | "
            f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} / {r['p99_ms']:.1f} | {r['errors']} of {r['requests']:,} | "
            f"{r['texts_per_pass']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    best = max((r for r in rows if r["mode"] == "micro-batching"), key=lambda r: r["sentences_per_s"])
    targets = [
        (
            f"sentences/s, micro-batching, {best['texts_per_request']} per request",
            best["sentences_per_s"],
            TARGET_SENTENCES,
            True,
        ),
        ("p95 latency ms, same row", best["p95_ms"], TARGET_P95_MS, False),
        ("errors, all rows", sum(r["errors"] for r in rows), 0, False),
    ]
    body = [
        "## Serving: load test of `xtremedistil serve` on loopback\n",
        provenance(time.perf_counter() - start),
        f"Student of `{args.run}` on the `{args.backend}` backend; {len(sentences):,} dev sentences as raw text "
        f"(mean {np.mean([len(s) for s in sentences]):.0f} characters), {args.clients} keep-alive clients "
        f"sending as fast as they are answered, {args.warmup:.0f} s warm-up then {args.duration:.0f} s measured "
        "per row, each row a fresh server; the clients share the machine's two cores with the server. Latency "
        "is the client's, request sent to response read. Server defaults otherwise (max batch 64 texts, max "
        "wait 2 ms).\n",
        *table,
        "",
        targets_table(targets),
        "",
        "Where a sentence's time goes in the server's forward pass (`predict` on batches of 64 dev sentences in "
        "one process, no HTTP; the server adds JSON, HTTP and queueing on top):",
        "",
        "| step | µs per sentence | share |",
        "|---|---:|---:|",
        *(
            f"| {step} | {1e6 * sec:.0f} | {100 * sec / sum(steps.values()):.0f}% |"
            for step, sec in steps.items()
        ),
        f"| all (in-process ceiling: {1 / sum(steps.values()):,.0f} sentences/s) | {1e6 * sum(steps.values()):.0f} | 100% |",
    ]
    if args.screenshot:
        rel = os.path.relpath(args.screenshot.resolve(), (ROOT / "docs").resolve())
        demo = args.demo_run or args.run
        body += [
            "",
            f'The web demo (`GET /`), its "all of them" example tagged by the student of `{demo}` '
            f"(`{args.backend}`), in headless Chromium:",
            "",
            f"![demo]({rel})",
        ]
    write_section("serve", "\n".join(body))


if __name__ == "__main__":
    main()
