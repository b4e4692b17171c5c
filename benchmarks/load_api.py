"""Load test of `medtune serve --api` on loopback: many concurrent clients, bounded in count and time.

Starts the API (uvicorn, in this process) on a run's model, then C clients each send R requests of one
MedMCQA question (from the shipped sample) and wait for the answer. Also times single requests of
1, 2 and 4 questions one after another (small-batch latency). Writes JSON with device, versions,
commit, errors, p50/p99 latency and requests/s.

usage: python benchmarks/load_api.py RUN OUT.json [--clients 32] [--requests 8] [--deadline 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_eval import cpu_model  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=8, help="per client")
    ap.add_argument("--deadline", type=float, default=600, help="seconds; the test stops here")
    ap.add_argument("--max-batch", type=int, default=32)
    args = ap.parse_args()

    import httpx
    import uvicorn

    from medtune.data.sources import load_benchmark
    from medtune.manifest import git_commit, package_versions
    from medtune.serve.answer import Answerer, source_from_run
    from medtune.serve.api import create_app

    items, _ = load_benchmark(["medmcqa-dev"])
    questions = [{"id": it.id, "question": it.question, "options": list(it.options)} for it in items[:512]]
    answerer = Answerer(source_from_run(args.run))
    app = create_app(answerer, max_batch=args.max_batch, timeout_s=args.deadline)
    port = 8765
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/v1/answer"

    # small-batch latency, one request at a time
    small = {}
    with httpx.Client(timeout=args.deadline) as c:
        c.post(url, json=questions[0])  # warm-up
        for n in (1, 2, 4):
            times = []
            for k in range(8):
                qs = questions[k * n:(k + 1) * n]
                t0 = time.perf_counter()
                r = c.post(url, json={"questions": qs})
                r.raise_for_status()
                times.append(time.perf_counter() - t0)
            small[f"batch_{n}"] = {"requests": len(times), "median_s": statistics.median(times),
                                   "min_s": min(times), "max_s": max(times)}

    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + args.deadline

    async def client(k: int, c: httpx.AsyncClient) -> None:
        for j in range(args.requests):
            if time.monotonic() > stop:
                errors.append("deadline passed before the request was sent")
                return
            q = questions[(k * args.requests + j) % len(questions)]
            t0 = time.perf_counter()
            try:
                r = await c.post(url, json=q)
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:100]}")
                    continue
                latencies.append(time.perf_counter() - t0)
            except httpx.HTTPError as err:
                errors.append(repr(err))

    async def run_all() -> float:
        limits = httpx.Limits(max_connections=args.clients)
        async with httpx.AsyncClient(timeout=args.deadline, limits=limits) as c:
            t0 = time.perf_counter()
            await asyncio.gather(*(client(k, c) for k in range(args.clients)))
            return time.perf_counter() - t0

    health_before = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    wall = asyncio.run(run_all())
    health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    server.should_exit = True
    sent = args.clients * args.requests
    result = {
        "what": "medtune serve --api load test on loopback: concurrent clients, one MedMCQA question per request",
        "command": f"python benchmarks/load_api.py {args.run} {args.out} --clients {args.clients} "
                   f"--requests {args.requests}",
        "commit": git_commit(), "versions": package_versions(),
        "device": {"backend": answerer.backend.to_dict(), "cpu": cpu_model(), "cores": os.cpu_count()},
        "model": answerer.info()["model"], "adapter": answerer.source.adapter, "scorer": answerer.scorer,
        "clients": args.clients, "requests": sent, "ok": len(latencies), "errors": len(errors),
        "error_examples": errors[:5], "wall_s": wall, "requests_per_s": len(latencies) / wall,
        "latency_s": {"p50": pct(latencies, 50), "p90": pct(latencies, 90), "p99": pct(latencies, 99),
                      "max": max(latencies)} if latencies else None,
        "forward_batches": health["forward_batches"] - health_before["forward_batches"],
        "largest_batch": health["largest_batch"],
        "small_batch_latency": small,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("clients", "requests", "ok", "errors", "requests_per_s",
                                             "latency_s", "forward_batches", "small_batch_latency")}, indent=2))


if __name__ == "__main__":
    main()
