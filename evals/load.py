"""Drive a running server with concurrent clients; check every answer against a sequential run.

Loopback only, bounded in count and time:

    python -m evals.load http://127.0.0.1:7860/ --clients 32 --questions 256
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def _key(d: dict) -> tuple:
    return d["answer"], d["abstained"], tuple((c["source"], c["start"], c["end"]) for c in d["citations"])


def run(url: str, clients: int = 32, count: int = 256, time_limit: float = 600.0) -> dict:
    """Ask ``count`` questions with ``clients`` concurrent callers; compare with one sequential pass."""
    from gradio_client import Client

    host = urlparse(url).hostname or ""
    if not host.startswith(LOOPBACK):
        raise ValueError(f"load tests run against loopback only, not {host}")
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    jobs = [questions[i % len(questions)] for i in range(count)]
    distinct = list(dict.fromkeys(jobs))
    sequential = Client(url, verbose=False)
    expected = {q: _key(sequential.predict(q, api_name="/ask")) for q in distinct}
    pool = [Client(url, verbose=False) for _ in range(clients)]
    lock = threading.Lock()
    queue = list(jobs)
    latencies: list[float] = []
    errors: list[str] = []
    mismatches: list[str] = []
    deadline = time.monotonic() + time_limit

    def worker(client):
        while time.monotonic() < deadline:
            with lock:
                if not queue:
                    return
                q = queue.pop()
            t = time.perf_counter()
            try:
                got = _key(client.predict(q, api_name="/ask"))
            except Exception as e:  # counted, reported
                with lock:
                    errors.append(f"{q}: {e}")
                continue
            with lock:
                latencies.append(time.perf_counter() - t)
                if got != expected[q]:
                    mismatches.append(q)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in pool]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "questions": count, "answered": len(latencies), "errors": len(errors),
            "mismatches": len(mismatches), "unfinished": len(queue), "seconds": wall,
            "qps": len(latencies) / wall if wall else 0.0,
            "p50_ms": float(np.percentile(latencies, 50) * 1e3) if latencies else 0.0,
            "p95_ms": float(np.percentile(latencies, 95) * 1e3) if latencies else 0.0,
            "first_errors": errors[:3], "first_mismatches": mismatches[:3]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--questions", type=int, default=256)
    p.add_argument("--time-limit", type=float, default=600.0)
    args = p.parse_args(argv)
    result = run(args.url, args.clients, args.questions, args.time_limit)
    print(json.dumps(result, indent=1))
    return 0 if result["errors"] == result["mismatches"] == result["unfinished"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
