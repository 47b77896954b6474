"""Are answers bit-for-bit the same under 32 threads as one at a time? (A script, not a test.)

    .venv/bin/python tests/stress_concurrency.py INDEX_DIR [--probe ask|ask-nocache|embed] [--rounds 5] [--torch]

Answers every question of evals/questions.jsonl once in order, then ``rounds`` × 4 × 167 more times
from 32 threads in a shuffled order, and prints each answer (or query vector, for ``embed``) that
differs from the sequential one. ``ask-nocache`` encodes every question again instead of reusing the
query cache; ``--torch`` swaps the ONNX embedder for sentence-transformers.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.pipeline import Assistant  # noqa: E402

THREADS = 32


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("index_dir")
    p.add_argument("--probe", choices=("ask", "ask-nocache", "embed"), default="ask-nocache")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--torch", action="store_true")
    args = p.parse_args(argv)
    questions = [json.loads(line)["question"] for line in (ROOT / "evals" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    a = Assistant.load(args.index_dir)
    if args.torch:
        from rag.embed import SentenceTransformerEmbedder

        a = Assistant(a.store, SentenceTransformerEmbedder(), a.settings)
    if args.probe == "ask-nocache":
        a = Assistant(a.store, a.embedder, a.settings, query_cache=0)
    print(f"{type(a.embedder).__name__}, probe {args.probe}", flush=True)

    if args.probe == "embed":
        def run(q):
            return a.embedder.embed_query(q).copy()

        def same(x, y):
            return np.array_equal(x, y)

        def show(x, y):
            return f"max |difference| {np.abs(x - y).max():.3g}"
    else:
        def run(q):
            d = a.ask(q).to_dict()
            d.pop("timings_ms")
            return json.dumps(d, sort_keys=True, ensure_ascii=False)

        def same(x, y):
            return x == y

        def show(x, y):
            return f"\n  sequential: {x}\n  concurrent: {y}"

    t0 = time.perf_counter()
    expected = {q: run(q) for q in questions}
    calls = differing = 0
    lock = threading.Lock()

    def one(q):
        nonlocal calls, differing
        got = run(q)
        with lock:
            calls += 1
            if not same(expected[q], got):
                differing += 1
                print(f"DIFFERS {q!r}: {show(expected[q], got)}", flush=True)

    for r in range(args.rounds):
        jobs = questions * 4
        random.Random(r).shuffle(jobs)
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, jobs))
        print(f"round {r + 1}: {calls} concurrent calls, {differing} differing ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
