"""Calibrate the abstention threshold (and compare answer-scoring weights) on a question set.

Retrieval runs once per question; sentence scoring is re-run for each weight setting, and the
threshold is swept offline over the recorded confidences. The objective is answer accuracy:
a question counts as right when it is unanswerable and the system abstains, or answerable and the
system answers with a gold string inside the answer.

    python -m evals.calibrate evals/questions.jsonl --index-dir .rag/index --split tune
"""
from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace

import numpy as np

from evals import metrics as M
from evals.formats import load_jsonl


def collect(assistant, questions, k: int = 5):
    """Per question: (question, query vector, hits)."""
    out = []
    for q in questions:
        qvec = assistant.embedder.embed_query(q.question)
        hits = assistant.retriever.search(q.question, qvec, k)
        out.append((q, qvec, hits))
    return out


def outcomes(assistant, cached, settings):
    """Per question: (confidence, answer contains gold, unanswerable) with abstention disabled."""
    answerer = replace_settings(assistant.answerer, replace(settings, abstain_below=-1e9))
    rows = []
    for q, qvec, hits in cached:
        a = answerer.answer(q.question, hits, qvec)
        ok = M.contains(a.text, q.answers) if q.answers else False
        rows.append((a.confidence, ok, not q.answerable))
    return rows


def replace_settings(answerer, settings):
    from rag.answer import ExtractiveAnswerer

    return ExtractiveAnswerer(answerer.index, answerer.embedder, settings)


def sweep(rows, grid=None):
    """(best threshold, accuracy at it, table of (threshold, accuracy)). Among equal accuracies the
    middle of the best plateau is taken, so the threshold is not perched on one question."""
    conf = np.array([r[0] for r in rows])
    ok = np.array([r[1] for r in rows])
    unans = np.array([r[2] for r in rows])
    grid = np.round(np.arange(0.0, 1.0, 0.01), 2) if grid is None else grid
    table = []
    for t in grid:
        abstain = conf < t
        right = np.where(unans, abstain, (~abstain) & ok)
        table.append((float(t), float(right.mean())))
    best = max(a for _, a in table)
    plateau = [t for t, a in table if a == best]
    return plateau[len(plateau) // 2], best, table


def main(argv=None):
    from rag.config import Settings
    from rag.pipeline import Assistant
    from rag.retrieve import HybridRetriever

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("questions")
    p.add_argument("--index-dir", default=None)
    p.add_argument("--split", default="tune", help="use only questions of this split ('all' for every one)")
    p.add_argument("--grid", action="store_true", help="also compare answer-scoring weights")
    p.add_argument("--also", nargs=2, metavar=("QUESTIONS", "INDEX_DIR"),
                   help="a second question set and its index: pick the threshold maximising (2·ours + theirs)/3")
    args = p.parse_args(argv)
    qs = load_jsonl(args.questions)
    if args.split != "all":
        qs = [q for q in qs if q.split in (None, args.split)]
    base = Settings()
    assistant = Assistant.load(args.index_dir, settings=base)
    fusions = [(base.fusion, base.dense_weight)] + ([("score", w) for w in (0.3, 0.5, 0.7)] + [("dense", 0.5), ("bm25", 0.5)] if args.grid else [])
    results = []
    for fusion, dw in fusions:
        s0 = replace(base, fusion=fusion, dense_weight=dw)
        assistant.retriever = HybridRetriever(assistant.index, assistant.embedder, s0)
        cached = collect(assistant, qs, base.top_k)
        hit5 = np.mean([any(h.chunk.doc_id in q.gold_docs for h in hits) for q, _, hits in cached if q.answerable])
        grid = [s0]
        if args.grid:
            grid = [replace(s0, w_semantic=ws, w_lexical=wl, w_rank=wr, w_type=wt, context=c)
                    for ws, wl, wr, wt, c in itertools.product((0.4, 0.6, 0.8), (0.3, 0.5), (0.0, 0.05), (0.0, 0.1, 0.2), (0.0, 0.5))]
        for s in grid:
            t, acc, _ = sweep(outcomes(assistant, cached, s))
            results.append((acc, t, s, hit5))
    if args.also:
        other_qs = load_jsonl(args.also[0])
        other = Assistant.load(args.also[1], settings=base)
        assistant = Assistant.load(args.index_dir, settings=base)  # the loop above swapped its retriever
        ours = outcomes(assistant, collect(assistant, qs, base.top_k), base)
        theirs = outcomes(other, collect(other, other_qs, base.top_k), base)
        _, _, t_ours = sweep(ours)
        _, _, t_theirs = sweep(theirs)
        combined = [(t, (2 * a + b) / 3, a, b) for (t, a), (_, b) in zip(t_ours, t_theirs)]
        t, mixed, a, b = max(combined, key=lambda x: x[1])
        print(json.dumps({"threshold": t, "weighted_accuracy": round(mixed, 4), "ours": round(a, 4), "theirs": round(b, 4)}))
    results.sort(key=lambda x: -x[0])
    for acc, t, s, hit5 in results[:15]:
        print(json.dumps({"accuracy": round(acc, 4), "threshold": t, "fusion": s.fusion, "dense_weight": s.dense_weight,
                          "doc_hit@5": round(float(hit5), 3), "w_semantic": s.w_semantic, "w_lexical": s.w_lexical,
                          "w_rank": s.w_rank, "w_type": s.w_type, "context": s.context}))

if __name__ == "__main__":
    main()
