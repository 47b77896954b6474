"""Run a question set through the real pipeline and score it.

Input: a list of Question records; output: one record per question (its prediction and per-question
scores) and the aggregate metrics.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from evals import metrics as M


@dataclass(frozen=True)
class Question:
    id: Any
    question: str
    answers: tuple[str, ...] = ()
    source: str | None = None
    also_in: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    type: str | None = None
    split: str | None = None
    relevant: dict[str, int] = field(default_factory=dict)  # BEIR qrels: doc id -> grade

    @property
    def answerable(self) -> bool:
        return bool(self.answers) or bool(self.relevant)

    @property
    def gold_docs(self) -> set[str]:
        docs = {self.source, *self.also_in} if self.source else set(self.also_in)
        return docs | {d for d, g in self.relevant.items() if g > 0}


def load_jsonl(path: Path) -> list[Question]:
    """Our JSONL question format (see evals/README.md)."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        r = json.loads(line)
        out.append(Question(
            id=r.get("id", n), question=r["question"], answers=tuple(r.get("answers") or ()),
            source=r.get("source"), also_in=tuple(r.get("also_in") or ()), evidence=tuple(r.get("evidence") or ()),
            type=r.get("type"), split=r.get("split"),
        ))
    return out


def run(assistant, questions: Sequence[Question], k: int = 5, progress: bool = False) -> list[dict]:
    """One record per question: its prediction (``Answer.to_dict()`` plus ``id``) and its scores."""
    records = []
    iterator = questions
    if progress:
        from tqdm import tqdm

        iterator = tqdm(questions, desc="questions", unit="q", leave=False)
    for q in iterator:
        t0 = time.perf_counter()
        try:
            answer = assistant.ask(q.question, k=k)
        except Exception as e:  # recorded and counted, never fatal
            records.append({"id": q.id, "question": q.question, "error": f"{type(e).__name__}: {e}", "q": q})
            continue
        latency = (time.perf_counter() - t0) * 1e3
        pred = {"id": q.id, **answer.to_dict()}
        records.append({"id": q.id, "q": q, "prediction": pred, "confidence": answer.confidence,
                        "latency_ms": latency, **score_one(assistant, q, pred)})
    return records


def score_one(assistant, q: Question, pred: dict) -> dict:
    docs = M.dedupe(p["source"] for p in pred["passages"])
    gold = q.gold_docs
    cites = pred["citations"]
    exact = [assistant.index.document(c["source"]).text[c["start"]:c["end"]] == c["quote"] for c in cites]
    out = {
        "ranked_docs": docs,
        "hit1": M.hit_at(docs, gold, 1), "hit5": M.hit_at(docs, gold, 5), "rr10": M.reciprocal_rank(docs, gold, 10),
        "abstained": pred["abstained"], "unanswerable": not q.answerable,
        "citations_exact": exact,
        "top_citation_in_gold": bool(cites) and cites[0]["source"] in gold,
        "answer_chars": len(pred["answer"]),
    }
    if q.answers:
        out["contains"] = M.contains(pred["answer"], q.answers)
        out["f1"] = M.token_f1(pred["answer"], q.answers)
        out["em"] = M.exact_match(pred["answer"], q.answers)
    if q.evidence and q.source:
        out["evidence_hit5"] = evidence_hit(assistant, q, pred["passages"][:5])
    return out


def evidence_hit(assistant, q: Question, passages: list[dict]) -> float:
    doc = assistant.index.document(q.source)
    if doc is None:
        return 0.0
    spans = [(i, i + len(e)) for e in q.evidence if (i := doc.text.find(e)) >= 0]
    return float(any(p["source"] == q.source and p["start"] < e and s < p["end"] for p in passages for s, e in spans))


def summarize(records: list[dict]) -> dict[str, float]:
    """Aggregate metrics over records (errors count as misses and are reported)."""
    ok = [r for r in records if "error" not in r]
    answerable = [r for r in ok if not r["unanswerable"]]
    with_answers = [r for r in answerable if "contains" in r]
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    cites = [x for r in ok for x in r["citations_exact"]]
    answered = [r for r in answerable if not r["abstained"]]
    out = {
        "questions": len(records), "errors": len(records) - len(ok),
        "answerable": len(answerable), "unanswerable": len(ok) - len(answerable),
        "hit@1": mean([r["hit1"] for r in answerable]), "hit@5": mean([r["hit5"] for r in answerable]),
        "mrr@10": mean([r["rr10"] for r in answerable]),
        "containment": mean([float(r["contains"]) for r in with_answers]),
        "containment_when_answered": mean([float(r["contains"]) for r in with_answers if not r["abstained"]]),
        "f1": mean([r["f1"] for r in with_answers]), "em": mean([r["em"] for r in with_answers]),
        "citation_exact": mean([float(x) for x in cites]) if cites else 1.0,
        "top_citation_in_gold": mean([float(r["top_citation_in_gold"]) for r in answered]),
        "answer_chars": mean([r["answer_chars"] for r in ok if not r["abstained"]]),
        "latency_p50_ms": M.percentile([r["latency_ms"] for r in ok], 50),
        "latency_p95_ms": M.percentile([r["latency_ms"] for r in ok], 95),
    }
    ev = [r["evidence_hit5"] for r in answerable if "evidence_hit5" in r]
    if ev:
        out["evidence_hit@5"] = mean(ev)
    ab = M.abstention([r["abstained"] for r in ok], [r["unanswerable"] for r in ok])
    out.update({f"abstain_{k}": v for k, v in ab.items()})
    return out
