"""Drive a running server with concurrent clients; check every answer against a sequential run.

Loopback only, bounded in count and time; ``--log`` keeps every error and mismatch in full:

    python -m evals.load http://127.0.0.1:7860/ --clients 32 --questions 256 --log load.jsonl
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


def run(url: str, clients: int = 32, count: int = 256, time_limit: float = 600.0, log: Path | None = None) -> dict:
    """Ask ``count`` questions with ``clients`` concurrent callers; compare with one sequential pass.

    Every mismatch (answer, abstention or citations differing from the sequential answer) and every
    error is appended to ``log`` as one JSON line holding the question and both answers in full.
    """
    from gradio_client import Client

    host = urlparse(url).hostname or ""
    if not host.startswith(LOOPBACK):
        raise ValueError(f"load tests run against loopback only, not {host}")
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    jobs = [questions[i % len(questions)] for i in range(count)]
    distinct = list(dict.fromkeys(jobs))
    sequential = Client(url, verbose=False)
    expected = {q: sequential.predict(q, api_name="/ask") for q in distinct}
    pool = [Client(url, verbose=False) for _ in range(clients)]
    lock = threading.Lock()
    queue = list(jobs)
    latencies: list[float] = []
    errors: list[dict] = []
    mismatches: list[dict] = []
    deadline = time.monotonic() + time_limit

    def worker(client):
        while time.monotonic() < deadline:
            with lock:
                if not queue:
                    return
                q = queue.pop()
            t = time.perf_counter()
            try:
                got = client.predict(q, api_name="/ask")
            except Exception as e:  # counted, reported
                with lock:
                    errors.append({"kind": "error", "clients": clients, "question": q, "error": f"{type(e).__name__}: {e}"})
                continue
            with lock:
                latencies.append(time.perf_counter() - t)
                # The question too: an answer meant for another caller must not pass as this one's.
                if _key(got) != _key(expected[q]) or got.get("question") != expected[q].get("question"):
                    mismatches.append({"kind": "mismatch", "clients": clients, "question": q,
                                       "sequential": expected[q], "concurrent": got})

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in pool]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if log is not None:
        with open(log, "a", encoding="utf-8") as f:
            for row in errors + mismatches:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"clients": clients, "questions": count, "answered": len(latencies), "errors": len(errors),
            "mismatches": len(mismatches), "unfinished": len(queue), "seconds": wall,
            "qps": len(latencies) / wall if wall else 0.0,
            "p50_ms": float(np.percentile(latencies, 50) * 1e3) if latencies else 0.0,
            "p95_ms": float(np.percentile(latencies, 95) * 1e3) if latencies else 0.0,
            "first_errors": [f"{e['question']}: {e['error']}" for e in errors[:3]],
            "first_mismatches": [m["question"] for m in mismatches[:3]],
            "log": str(log) if log is not None else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--questions", type=int, default=256)
    p.add_argument("--time-limit", type=float, default=600.0)
    p.add_argument("--log", type=Path, default=None, help="append each error and mismatch, in full, as JSON lines")
    args = p.parse_args(argv)
    result = run(args.url, args.clients, args.questions, args.time_limit, args.log)
    print(json.dumps(result, indent=1))
    return 0 if result["errors"] == result["mismatches"] == result["unfinished"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
