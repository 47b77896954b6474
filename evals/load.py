"""Drive a running server with concurrent clients; check every answer against a sequential run.

Loopback only, bounded in count and time; ``--log`` keeps every error and mismatch in full. ``--target``
picks the endpoint: ``api`` posts to the HTTP JSON API (/api/ask), ``gradio`` calls the page's ``ask``
endpoint through gradio_client:

    python -m evals.load http://127.0.0.1:7860/ --target api --clients 16 --questions 512 --log load.jsonl

By default the sequential pass runs first, so the concurrent one meets questions the server has seen
(its query-vector cache holds them); ``--concurrent-first`` runs it last instead, so that against a
freshly started server every question's first encoding happens under load.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlparse

import numpy as np

QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
LOOPBACK = ("127.", "localhost", "[::1]", "::1")
TARGETS = ("gradio", "api")


def _key(d: dict) -> str:
    """All of an answer but its timings: question, text, outcome, confidence, citations and passages."""
    return json.dumps({k: v for k, v in d.items() if k != "timings_ms"}, sort_keys=True, ensure_ascii=False)


class ApiClient:
    """One caller of POST /api/ask over one kept-alive connection; ``predict`` mirrors gradio_client's."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None):
        import httpx

        self.url = urljoin(url, "api/ask")
        self.http = httpx.Client(auth=auth, timeout=60.0)

    def predict(self, question: str, api_name: str = "/ask") -> dict:
        r = self.http.post(self.url, json={"question": question})
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    def close(self) -> None:
        self.http.close()


def _client(url: str, target: str, auth: tuple[str, str] | None):
    if target == "api":
        return ApiClient(url, auth)
    from gradio_client import Client

    return Client(url, verbose=False, **({"auth": auth} if auth else {}))


def run(url: str, clients: int = 32, count: int = 256, time_limit: float = 600.0, log: Path | None = None,
        target: str = "gradio", auth: tuple[str, str] | None = None, concurrent_first: bool = False) -> dict:
    """Ask ``count`` questions with ``clients`` concurrent callers; compare with one sequential pass
    (before the concurrent one, or after it with ``concurrent_first``).

    Every mismatch (any part of the answer but its timings differing from the sequential answer) and
    every error is appended to ``log`` as one JSON line holding the question and both answers in full.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    host = urlparse(url).hostname or ""
    if not host.startswith(LOOPBACK):
        raise ValueError(f"load tests run against loopback only, not {host}")
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    jobs = [questions[i % len(questions)] for i in range(count)]
    distinct = list(dict.fromkeys(jobs))
    sequential = _client(url, target, auth)
    expected: dict[str, dict] = {}

    def sequential_pass():
        expected.update((q, sequential.predict(q, api_name="/ask")) for q in distinct)

    if not concurrent_first:
        sequential_pass()
    pool = [_client(url, target, auth) for _ in range(clients)]
    lock = threading.Lock()
    queue = list(jobs)
    latencies: list[float] = []
    errors: list[dict] = []
    answers: list[tuple[str, dict]] = []
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
                answers.append((q, got))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in pool]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if concurrent_first:
        sequential_pass()
    for c in [sequential, *pool]:
        getattr(c, "close", lambda: None)()
    # The question is part of the key: an answer meant for another caller must not pass as this one's.
    mismatches = [{"kind": "mismatch", "clients": clients, "question": q, "sequential": expected[q], "concurrent": got}
                  for q, got in answers if _key(got) != _key(expected[q])]
    if log is not None:
        with open(log, "a", encoding="utf-8") as f:
            for row in errors + mismatches:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"target": target, "clients": clients, "questions": count, "answered": len(latencies), "errors": len(errors),
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
    p.add_argument("--target", choices=TARGETS, default="gradio",
                   help="api: POST /api/ask (the HTTP JSON API); gradio: the page's ask endpoint (default)")
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD", help="the server's --auth, if it has one")
    p.add_argument("--concurrent-first", action="store_true",
                   help="run the concurrent pass before the sequential one (on a fresh server: nothing cached)")
    args = p.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    result = run(args.url, args.clients, args.questions, args.time_limit, args.log, args.target, auth, args.concurrent_first)
    print(json.dumps(result, indent=1))
    return 0 if result["errors"] == result["mismatches"] == result["unfinished"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
