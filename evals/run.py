"""Run a question set through the real pipeline, score it, and write predictions and reports.

Input: a Dataset (evals/formats.py). Output: one record per question (its prediction, ``Answer.to_dict()``
plus ``id``, and its scores) and a summary of retrieval, answer, citation, outcome, abstention,
calibration and latency metrics. A metric that a set cannot define (refusal recall without
unanswerable questions, hit@1 without answerable ones) is left out rather than reported as 0.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from evals import metrics as M
from evals.formats import Dataset, Question
from rag.types import ANSWER, POSSIBLE, REFUSE

RANK_DEPTH = 100  # passages retrieved to rank documents for hit@k, MRR@10 and nDCG@10
CONCISE_CHARS = 400  # "concise containment": the whole answer text fits in this many characters
CALIBRATION_BINS = 10


def cache_dir(dataset: Dataset) -> Path:
    """Where a BEIR/SQuAD corpus is indexed: keyed by the dataset's content hash, so reused."""
    root = Path(os.environ.get("RAG_CACHE_DIR") or ".rag/cache")
    return root / f"{dataset.kind}-{dataset.content_hash[:16]}"


def prepare(dataset: Dataset, index_dir: str | Path | None, embedder=None) -> tuple[Path, float | None]:
    """(index directory, build seconds or None when the cached index was reused)."""
    from rag.config import default_index_dir
    from rag.pipeline import build

    if dataset.documents is None:
        return Path(index_dir) if index_dir else default_index_dir(), None
    d = cache_dir(dataset)
    report = build(index_dir=d, documents=dataset.documents, embedder=embedder, lock_timeout=600)
    stamp = d / "build-seconds.json"
    if report.up_to_date and stamp.is_file():
        return d, json.loads(stamp.read_text())["seconds"]
    stamp.write_text(json.dumps({"seconds": report.seconds}))
    return d, report.seconds


def run(assistant, questions: Sequence[Question], k: int = 5, progress: bool = False,
        step: Callable[[int, int], None] | None = None) -> list[dict]:
    """One record per question; a question that raises is recorded with its error, not fatal.

    Args:
        progress: show a tqdm bar on stderr.
        step: called as ``step(done, total)`` before each question and once after the last.
    """
    records = []
    iterator = questions
    if progress:
        from tqdm import tqdm

        iterator = tqdm(questions, desc="questions", unit="q", dynamic_ncols=True)
    for done, q in enumerate(iterator):
        if step is not None:
            step(done, len(questions))
        t0 = time.perf_counter()
        try:
            answer = assistant.ask(q.question, k=k)
            latency = (time.perf_counter() - t0) * 1e3
            deep = assistant.retriever.search(answer.searched, assistant.embed_query(answer.searched), max(RANK_DEPTH, k))
        except Exception as e:  # recorded and counted, never fatal
            records.append({"id": q.id, "q": q, "error": f"{type(e).__name__}: {e}"})
            continue
        pred = {"id": q.id, **answer.to_dict()}
        doc_scores: dict[str, float] = {}
        for h in deep:  # documents ranked by their best passage
            doc_scores.setdefault(h.chunk.doc_id, float(h.score))
        records.append({"id": q.id, "q": q, "prediction": pred, "confidence": answer.confidence,
                        "latency_ms": latency, "doc_scores": doc_scores, **score_one(assistant, q, pred, list(doc_scores))})
    _add_trec(records)
    if step is not None:
        step(len(questions), len(questions))
    return records


def score_one(assistant, q: Question, pred: dict, docs: list[str]) -> dict:
    gold = q.gold_docs
    cites = pred["citations"]
    exact = [(d := assistant.store.document(c["source"])) is not None and d.text[c["start"]:c["end"]] == c["quote"] for c in cites]
    out = {
        "ranked_docs": docs[:10],
        "hit1": M.hit_at(docs, gold, 1), "hit5": M.hit_at(docs, gold, 5),
        "abstained": pred["abstained"], "outcome": pred["outcome"], "unanswerable": not q.answerable,
        "citations_exact": exact,
        "top_citation_in_gold": bool(cites) and cites[0]["source"] in gold,
        "answer_chars": len(pred["answer"]),
    }
    if q.answers:
        out["contains"] = not pred["abstained"] and M.contains(pred["answer"], q.answers)
        out["concise_contains"] = out["contains"] and len(pred["answer"]) <= CONCISE_CHARS
        out["f1"] = M.token_f1(pred["answer"], q.answers)
        out["em"] = M.exact_match(pred["answer"], q.answers)
    if q.evidence and q.source:
        out["evidence_hit5"] = evidence_hit(assistant, q, pred["passages"][:5])
    out["correct"] = correct(q, out)
    return out


def correct(q: Question, scores: dict) -> bool:
    """Right = abstained on an unanswerable question, or answered an answerable one with a gold string
    in the answer (or, without gold strings, with the first citation in a relevant document)."""
    if not q.answerable:
        return scores["abstained"]
    if scores["abstained"]:
        return False
    return scores["contains"] if "contains" in scores else scores["top_citation_in_gold"]


def answered_right(r: dict) -> bool:
    """The event the confidence predicts, for calibration: the question is answerable and the answer
    given is right by ``correct`` (a refusal is never right here, an unanswerable question never)."""
    return not r["unanswerable"] and r["correct"]


def calibration(records: list[dict]) -> dict:
    """ECE and reliability bins of the confidences against ``answered_right`` (errors left out)."""
    ok = [r for r in records if "error" not in r]
    return M.calibration([r["confidence"] for r in ok], [answered_right(r) for r in ok], CALIBRATION_BINS)


def _add_trec(records: list[dict]) -> None:
    ok = [r for r in records if "error" not in r and not r["unanswerable"]]
    if not ok:
        return
    qrels = {str(r["id"]): (dict(r["q"].relevant) or {d: 1 for d in r["q"].gold_docs}) for r in ok}
    per_query = M.trec({str(r["id"]): r["doc_scores"] for r in ok}, qrels)
    for r in ok:
        r.update(per_query[str(r["id"])])


def evidence_hit(assistant, q: Question, passages: list[dict]) -> float:
    doc = assistant.store.document(q.source)
    if doc is None:
        return 0.0
    spans = [(i, i + len(e)) for e in q.evidence if (i := doc.text.find(e)) >= 0]
    return float(any(p["source"] == q.source and p["start"] < e and s < p["end"] for p in passages for s, e in spans))


def summarize(records: list[dict]) -> dict[str, float]:
    """Aggregate metrics over records; errors are counted and left out of the means."""
    ok = [r for r in records if "error" not in r]
    answerable = [r for r in ok if not r["unanswerable"]]
    unanswerable = [r for r in ok if r["unanswerable"]]
    with_answers = [r for r in answerable if "contains" in r]
    answered = [r for r in answerable if not r["abstained"]]
    cites = [x for r in ok for x in r["citations_exact"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    out = {"questions": len(records), "errors": len(records) - len(ok),
           "answerable": len(answerable), "unanswerable": len(unanswerable),
           "accuracy": mean([float(r["correct"]) for r in ok])}
    if answerable:
        out.update({"hit@1": mean([r["hit1"] for r in answerable]), "hit@5": mean([r["hit5"] for r in answerable]),
                    "mrr@10": mean([r.get("mrr@10", 0.0) for r in answerable]),
                    "ndcg@10": mean([r.get("ndcg@10", 0.0) for r in answerable])})
    ev = [r["evidence_hit5"] for r in answerable if "evidence_hit5" in r]
    if ev:
        out["evidence_hit@5"] = mean(ev)
    if with_answers:
        out.update({
            "containment": mean([float(r["contains"]) for r in with_answers]),
            "concise_containment": mean([float(r["concise_contains"]) for r in with_answers]),
            "f1": mean([r["f1"] for r in with_answers]), "em": mean([r["em"] for r in with_answers]),
        })
    out.update({
        "answer_chars": mean([r["answer_chars"] for r in ok if not r["abstained"]]),
        "citation_exact": mean([float(x) for x in cites]) if cites else 1.0,
        "top_citation_in_gold": mean([float(r["top_citation_in_gold"]) for r in answered]),
    })
    for kind in (ANSWER, POSSIBLE, REFUSE):
        n = sum(r["outcome"] == kind for r in ok)
        out[f"outcome_{kind}"] = n
        out[f"outcome_{kind}_rate"] = n / len(ok) if ok else 0.0
    # A refusal (abstained) is the positive class. abstain_false_abstain_rate is the false-refusal rate.
    ab = M.abstention([r["abstained"] for r in ok], [r["unanswerable"] for r in ok])
    if any(r["abstained"] for r in ok):
        out["abstain_precision"] = ab["precision"]
    if unanswerable:
        out.update({"abstain_recall": ab["recall"], "abstain_f1": ab["f1"]})
    if answerable:
        out["abstain_false_abstain_rate"] = ab["false_abstain_rate"]
    if ok:
        out["ece"] = calibration(ok)["ece"]
    out["latency_p50_ms"] = M.percentile([r["latency_ms"] for r in ok], 50)
    out["latency_p95_ms"] = M.percentile([r["latency_ms"] for r in ok], 95)
    return out


def by_type(records: list[dict]) -> dict[str, dict[str, float]]:
    """``summarize`` per question type (without a type: "answerable" / "unanswerable")."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        q = r["q"]
        groups.setdefault(q.type or ("answerable" if q.answerable else "unanswerable"), []).append(r)
    return {t: summarize(rs) for t, rs in sorted(groups.items())}


def by_split(records: list[dict]) -> dict[str, dict[str, float]]:
    """``summarize`` per split, for the questions that name one ({} when none does)."""
    return {name: summarize([r for r in records if r["q"].split == name])
            for name in sorted({r["q"].split for r in records if r["q"].split})}


def worst_misses(records: list[dict], n: int = 15) -> list[dict]:
    """The ``n`` wrongly handled questions with the highest confidence: confidently wrong ones mislead
    most. Questions that raised are left out."""
    wrong = [r for r in records if "error" not in r and not r["correct"]]
    wrong.sort(key=lambda r: -r["confidence"])  # stable: ties keep the question set's order
    return wrong[:n]


def expected(q: Question) -> str:
    """What a question's right handling is, in a few words: "(refuse)", its gold strings or documents."""
    return "(refuse)" if not q.answerable else "; ".join(q.answers[:2]) or ", ".join(sorted(q.gold_docs)[:2])


def evaluate(assistant, dataset: Dataset, index_dir: Path, build_seconds: float | None = None, k: int = 5,
             limit: int | None = None, progress: bool = False, step: Callable[[int, int], None] | None = None,
             started: float | None = None) -> tuple[list[dict], dict, dict]:
    """(records, summary, report meta) of the first ``limit`` questions (None: all) of ``dataset``,
    asked of ``assistant``, which reads ``index_dir``: what `rag eval` prints and the chat page's
    Evaluate tab shows, so the two always agree. ``progress`` and ``step`` are those of ``run``;
    meta's ``seconds`` count from ``started`` (a ``time.perf_counter()``; default: now)."""
    from dataclasses import asdict

    t0 = time.perf_counter() if started is None else started
    questions = dataset.questions[:limit] if limit else dataset.questions
    records = run(assistant, questions, k=k, progress=progress, step=step)
    summary = summarize(records)
    if build_seconds is not None:
        summary["index_build_s"] = build_seconds
    meta = {"model": assistant.store.model_id, "k": k, "index_dir": str(index_dir),
            "corpus": {"documents": len(assistant.store.catalog()), "passages": len(assistant.store)},
            "settings": asdict(assistant.settings), "chunker": assistant.store.manifest()["chunker"],
            "seconds": time.perf_counter() - t0, "limit": limit}
    return records, summary, meta


def write_predictions(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            row = r["prediction"] if "prediction" in r else {"id": r["id"], "question": r["q"].question, "error": r["error"]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_report(directory: Path, dataset: Dataset, records: list[dict], summary: dict, meta: dict) -> None:
    """report.json, report.md, types.png, latency.png and reliability.png in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    types = by_type(records)
    splits = by_split(records)
    cal = calibration(records)
    report = {"dataset": {"path": str(dataset.path), "kind": dataset.kind, "content_hash": dataset.content_hash},
              **meta, "metrics": summary, "by_type": types, "by_split": splits, "calibration": cal,
              "errors": [{"id": r["id"], "error": r["error"]} for r in records if "error" in r]}
    (directory / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    (directory / "report.md").write_text(markdown(dataset, summary, types, records, meta, splits, cal), encoding="utf-8")
    plots(directory, types, [r["latency_ms"] for r in records if "latency_ms" in r], cal)


# The columns of the per-type and per-split tables.
GROUP_KEYS = ("questions", "accuracy", "hit@1", "evidence_hit@5", "containment", "concise_containment", "abstain_f1",
              "abstain_false_abstain_rate", "ece")
LEGEND = (f"containment: the answer holds a gold string (answerable questions; a refusal holds none); "
          f"concise_containment: the same with the whole answer ≤ {CONCISE_CHARS} characters. abstain_*: a refusal is the "
          "positive class; abstain_false_abstain_rate is the false-refusal rate (answerable questions refused). "
          "ece: see Calibration. –: not defined for that group (e.g. refusal F1 without unanswerable questions).")


def markdown(dataset: Dataset, summary: dict, types: dict, records: list[dict], meta: dict, splits: dict,
             cal: dict | None = None) -> str:
    cal = cal or calibration(records)
    lines = [f"# Evaluation of {dataset.path}", "",
             f"{summary['questions']} questions ({summary['answerable']} answerable, {summary['unanswerable']} unanswerable, "
             f"{summary['errors']} errors); model {meta.get('model')}; k={meta.get('k')}.", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in summary.items()]
    lines += ["", LEGEND]
    if splits:
        names = list(splits)
        lines += ["", "## By split", "", "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {k} | " + " | ".join(fmt(splits[n].get(k)) for n in names) + " |" for k in GROUP_KEYS]
    lines += ["", "## By type", "", "| type | " + " | ".join(GROUP_KEYS) + " |", "|---|" + "---|" * len(GROUP_KEYS)]
    lines += [f"| {t} | " + " | ".join(fmt(v.get(k)) for k in GROUP_KEYS) + " |" for t, v in types.items()]
    lines += ["", "## Calibration", "",
              f"Expected calibration error {fmt(cal['ece'])} over {CALIBRATION_BINS} equal-width confidence bins: the "
              "share-weighted gap between a bin's mean confidence and how often its questions were answered right "
              "(answerable, not refused, and the answer holds a gold string, or without gold strings its first "
              "citation is in a gold document). Unanswerable questions count as not answered right.", "",
              "| confidence | questions | mean confidence | answered right |", "|---|---|---|---|"]
    lines += [f"| {b['lo']:.1f}–{b['hi']:.1f} | {b['n']} | {fmt(b['confidence'])} | {fmt(b['accuracy'])} |"
              for b in cal["bins"]]
    lines += ["", "## Worst misses", "", "| id | question | expected | got | outcome | confidence |",
              "|---|---|---|---|---|---|"]
    for r in worst_misses(records):
        q = r["q"]
        got = "(refused)" if r["abstained"] else r["prediction"]["answer"][:160]
        lines.append(f"| {q.id} | {cell(q.question)} | {cell(expected(q))} | {cell(got)} | {r['outcome']} | {r['confidence']:.2f} |")
    lines += ["", "Plots: `types.png` (accuracy by type), `latency.png` (latency histogram), `reliability.png` "
              "(mean confidence against how often answered right, per confidence bin, with counts).", ""]
    return "\n".join(lines)


def cell(s: str) -> str:
    return " ".join(str(s).split()).replace("|", "\\|")


def fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def plots(directory: Path, types: dict, latencies: list[float], cal: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(types)
    ax.bar(names, [types[t]["accuracy"] for t in names], color="#3b82f6")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy by question type")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(directory / "types.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(latencies or [0], bins=30, color="#10b981")
    ax.set_xlabel("latency per question (ms)")
    ax.set_ylabel("questions")
    ax.set_title("Latency")
    fig.tight_layout()
    fig.savefig(directory / "latency.png", dpi=100)
    plt.close(fig)
    if cal is not None:
        reliability_plot(directory / "reliability.png", cal)


def reliability_plot(path: Path, cal: dict) -> None:
    """Bars: how often each confidence bin's questions were answered right; dots: the bin's mean
    confidence against that; the diagonal is perfect calibration. Each bar is labelled with its count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = [b for b in cal["bins"] if b["n"]]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9ca3af", label="perfect calibration")
    ax.bar([b["lo"] for b in full], [b["accuracy"] for b in full], width=[b["hi"] - b["lo"] for b in full], align="edge",
           color="#93c5fd", edgecolor="#1d4ed8", label="answered right")
    ax.plot([b["confidence"] for b in full], [b["accuracy"] for b in full], "o-", color="#b91c1c", label="bin: mean confidence, share right")
    for b in full:
        ax.annotate(f"n={b['n']}", ((b["lo"] + b["hi"]) / 2, b["accuracy"]), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("confidence")
    ax.set_ylabel("share answered right")
    ax.set_title(f"Reliability (ECE {cal['ece']:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare(a_path: Path, b_path: Path) -> str:
    """A side-by-side table of two report.json files with the deltas (B - A)."""
    a = json.loads(Path(a_path).read_text(encoding="utf-8"))["metrics"]
    b = json.loads(Path(b_path).read_text(encoding="utf-8"))["metrics"]
    rows = [f"{'metric':<24} {'A':>10} {'B':>10} {'B-A':>10}"]
    for key in list(dict.fromkeys([*a, *b])):
        va, vb = a.get(key), b.get(key)
        delta = f"{vb - va:+10.3f}" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else f"{'':>10}"
        rows.append(f"{key:<24} {fmt(va) if va is not None else '-':>10} {fmt(vb) if vb is not None else '-':>10} {delta}")
    return "\n".join(rows)


# The metrics `rag eval` prints (and the Evaluate tab shows), in this order, where a set defines them.
TABLE_KEYS = ("questions", "errors", "accuracy", "hit@1", "hit@5", "mrr@10", "ndcg@10", "evidence_hit@5", "containment",
              "concise_containment", "f1", "em", "citation_exact", "top_citation_in_gold", "outcome_answer_rate",
              "outcome_possible_rate", "outcome_refuse_rate", "abstain_precision", "abstain_recall", "abstain_f1",
              "abstain_false_abstain_rate", "ece", "answer_chars", "latency_p50_ms", "latency_p95_ms")


def table(summary: dict) -> str:
    return "\n".join(f"{k:<28} {fmt(summary[k]):>10}" for k in TABLE_KEYS if k in summary)

