"""Answer, abstention and calibration metrics, each a pure function of predictions and gold data.

Answer normalisation follows the official SQuAD v1.1 evaluation script: lower case, drop punctuation
and the articles a/an/the, collapse whitespace. Containment also folds typographic quotes and dashes.
"""
from __future__ import annotations

import bisect
import re
import string
import unicodedata
from collections import Counter
from typing import Sequence

_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def squad_normalize(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def fold(s: str) -> str:
    """Case, whitespace, typographic quotes and dashes folded, for containment."""
    return " ".join(unicodedata.normalize("NFKC", s).translate(_FOLD).lower().split())


def contains(answer: str, golds: Sequence[str]) -> bool:
    a = fold(answer)
    return any(fold(g) in a for g in golds if g.strip())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(squad_normalize(prediction) == squad_normalize(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best SQuAD token F1 against any gold."""
    best = 0.0
    p = squad_normalize(prediction).split()
    for g in golds:
        gt = squad_normalize(g).split()
        common = Counter(p) & Counter(gt)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(p), same / len(gt)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def hit_at(ranked_docs: Sequence[str], gold: set[str], k: int) -> float:
    return float(any(d in gold for d in ranked_docs[:k]))


def abstention(abstained: Sequence[bool], unanswerable: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of abstaining (positive = abstain) and the false-abstain rate on answerable."""
    tp = sum(a and u for a, u in zip(abstained, unanswerable))
    fp = sum(a and not u for a, u in zip(abstained, unanswerable))
    fn = sum((not a) and u for a, u in zip(abstained, unanswerable))
    answerable = sum(not u for u in unanswerable)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "false_abstain_rate": fp / answerable if answerable else 0.0}


def calibration(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> dict:
    """Expected calibration error over ``bins`` equal-width bins of [0, 1], and the bins themselves.

    ECE = sum over bins b of |B_b|/N * |accuracy(B_b) - mean confidence(B_b)|. Bin i holds
    confidences in [i/bins, (i+1)/bins); the last bin also holds 1.0. Each bin is
    ``{"lo", "hi", "n", "confidence", "accuracy"}``, the last two None when it is empty.
    """
    edges = [i / bins for i in range(bins + 1)]
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for c, ok in zip(confidences, correct):
        members[min(max(bisect.bisect_right(edges, c) - 1, 0), bins - 1)].append((float(c), bool(ok)))
    n = sum(len(m) for m in members)
    ece, rows = 0.0, []
    for i, m in enumerate(members):
        conf = sum(c for c, _ in m) / len(m) if m else None
        acc = sum(ok for _, ok in m) / len(m) if m else None
        if m:
            ece += len(m) / n * abs(acc - conf)
        rows.append({"lo": edges[i], "hi": edges[i + 1], "n": len(m), "confidence": conf, "accuracy": acc})
    return {"ece": ece, "bins": rows}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile (numpy's default), 0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def trec(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per-query nDCG@10 and MRR@10 from trec_eval (pytrec_eval), as published BEIR tables compute them.

    ``run`` maps query id -> {doc id: score}; only each query's 10 best documents are kept, so the
    reciprocal rank is MRR@10. Queries without a relevant document get 0.
    """
    import pytrec_eval

    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    judged = {q: rel for q, rel in qrels.items() if any(g > 0 for g in rel.values())}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recip_rank"})
    scores = evaluator.evaluate({q: top10.get(q, {}) or {"__none__": 0.0} for q in judged})
    return {q: {"ndcg@10": scores.get(q, {}).get("ndcg_cut_10", 0.0), "mrr@10": scores.get(q, {}).get("recip_rank", 0.0)}
            for q in run}
