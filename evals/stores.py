"""Do the stores answer alike? `python -m evals.stores [SET ...]` indexes each question set's corpus
into the local store and into milvus-lite, asks every question of both, and reports how many answers
(outcome, quoted text, citations with offsets) and top-5 passage lists are identical.

SET is a question set `rag eval` reads (default: evals/questions.jsonl over seeds/). Writes
stores.json in --out. Differences come from the engines, not the code above them: Milvus's BM25
tokenises our terms with its own analyzer, and its scores can differ in the last digits.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compare(path: str, out: Path, limit: int | None = None) -> dict:
    from evals import formats, run
    from rag.config import default_cache_dir
    from rag.embed import indexing_embedder
    from rag.pipeline import Assistant, build

    dataset = formats.load(path)
    questions = dataset.questions[:limit] if limit else dataset.questions
    local_dir = out / "local"
    spec = f"milvus-lite:{out / 'milvus.db'}"
    shutil.rmtree(local_dir, ignore_errors=True)
    shutil.rmtree(out / "milvus.db", ignore_errors=True)
    embedder = indexing_embedder(default_cache_dir())  # one embedder for both stores: same vectors
    seconds = {}
    for name, store in (("local", None), ("milvus-lite", spec)):
        t0 = time.perf_counter()
        if dataset.documents is None:
            build([ROOT / "seeds"], local_dir, embedder=embedder, store=store)
        else:
            build(index_dir=local_dir, documents=dataset.documents, embedder=embedder, store=store)
        seconds[name] = round(time.perf_counter() - t0, 1)
    a = Assistant.load(local_dir, embedder=embedder)
    b = Assistant.load(local_dir, embedder=embedder, store=spec)
    same_answer = same_hits = 0
    differ = []
    for q in questions:
        x, y = a.ask(q.question), b.ask(q.question)
        key = lambda ans: (ans.outcome, ans.text, [(c.doc_id, c.start, c.end) for c in ans.citations])  # noqa: E731
        hits = lambda ans: [h.chunk.chunk_id for h in ans.hits]  # noqa: E731
        same_answer += key(x) == key(y)
        same_hits += hits(x) == hits(y)
        if key(x) != key(y) and len(differ) < 20:
            differ.append({"question": q.question, "local": x.text[:200], "milvus": y.text[:200],
                           "confidence": [round(x.confidence, 3), round(y.confidence, 3)]})
    n = len(questions)
    return {"set": path, "questions": n, "same_answer": same_answer / n, "same_top5": same_hits / n,
            "build_seconds": seconds, "examples": differ}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.stores", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="*", default=[str(ROOT / "evals" / "questions.jsonl")])
    p.add_argument("--out", default=str(ROOT / ".rag" / "stores"))
    p.add_argument("-n", "--limit", type=int, default=None)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for s in args.sets:
        r = compare(s, out / Path(s).stem, args.limit)
        print(f"{s}: {r['questions']} questions, same answer {r['same_answer']:.3f}, same top-5 passages "
              f"{r['same_top5']:.3f}, build s {r['build_seconds']}", flush=True)
        results.append(r)
    (out / "stores.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
