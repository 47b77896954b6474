"""Rebuild the shipped answer model, rag/models/answer_model.json, and measure it on held-out folds.

    python -m evals.train                      # the defaults below; ~5 min on 2 cores, indexes cached
    python -m evals.train --folds 5 --seed 0 --out rag/models/answer_model.json

Inputs (read from ../shared/benchmarks-dev and evals/; nothing is copied into the project):
- SQuAD 2.0 part A: 17 articles; its unanswerable questions were written to look answerable.
- WikiQA dev: answer sentences on Wikipedia summary pages; most questions have none on their page.
- Our own question set, **tune split only** (the held-out split is never used for a choice).
- Near-misses made from answerable questions of SQuAD and our tune split: one name or number of the
  question that its gold sentence holds is swapped for another of the same kind from the same
  article, so the gold sentence no longer answers it (label: unanswerable), the way SQuAD 2.0 wrote
  its own.

Every question goes through the real retrieval (k passages), its candidates get their features
(rag/answer/candidates.py) and a sentence is labelled an answer when it holds a gold string.
Cross-validation is grouped by article (a SQuAD title, a WikiQA page, a seed article), so no article
is in both the training and the test part of a fold; every figure printed is measured on the test
parts only. The thresholds come from those held-out predictions; the shipped model is then fitted on
everything, with a fixed seed, and records its inputs (with sha256), settings and held-out figures.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from evals import metrics as M

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "benchmarks-dev"
DEFAULTS = {"squad": DEV / "squad2-part-a" / "dev-v2.0-part-a.json", "wikiqa": DEV / "wikiqa-dev",
            "own": ROOT / "evals" / "questions.jsonl", "seeds": ROOT / "seeds"}
L2_SENTENCE, L2_QUESTION = 1.0, 1.0
MAX_FALSE_REFUSAL = 0.08  # the refusal threshold is the highest whose mean held-out false-refusal rate stays under this
CONFIDENT = 0.5  # at or above: a confident answer; below (and above the refusal threshold): a possible answer


@dataclass
class Item:
    """One question through retrieval: its candidates, labels and group."""

    dataset: str
    group: str
    qid: str
    type: str
    answerable: bool
    X: np.ndarray  # candidate features
    y: np.ndarray  # 1 where the candidate holds a gold string
    texts: list[str]
    c: object  # rag.answer.Candidates


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w%$.,-]+", " ", text.lower()).split())


def holds(sentence: str, golds) -> bool:
    s = _norm(sentence)
    for g in golds:
        g = _norm(g)
        if g and (g in s or (len(s) >= 30 and s in g)):
            return True
    return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _index(name: str, build_args: dict, cache: Path) -> Path:
    from rag.pipeline import build

    d = cache / name
    build(index_dir=d, lock_timeout=600, **build_args)
    return d


def load_sets(args) -> list[tuple[str, Path, list, callable]]:
    """(dataset name, index dir, questions, group of a question)."""
    from evals import formats

    cache = Path(args.cache)
    out = []
    squad = formats.load(args.squad)
    d = _index(f"squad-{squad.content_hash[:16]}", {"documents": squad.documents}, cache)
    out.append(("squad", d, squad.questions, lambda q: (q.article or q.source or f"q:{q.id}").split("/")[0]))
    wiki = formats.load(Path(args.wikiqa) / "questions.jsonl")
    d = _index(f"wikiqa-{_sha256(Path(args.wikiqa) / 'corpus')[:16]}", {"paths": [Path(args.wikiqa) / "corpus"]}, cache)
    out.append(("wikiqa", d, wiki.questions, lambda q: q.source or f"q:{q.id}"))
    own = [q for q in formats.load(args.own).questions if q.split == "tune"]
    d = _index(f"seeds-{_sha256(Path(args.seeds))[:16]}", {"paths": [Path(args.seeds)]}, cache)
    out.append(("own", d, own, lambda q: q.source or f"q:{q.id}"))
    return out


# ------------------------------------------------------------------------------------------ near-misses

_SWAPPABLE = re.compile(r"\b(?:[A-Z][a-z]+(?: [A-Z][a-z]+)*|\d[\d,.]*)\b")


def near_misses(questions, documents_text: dict[str, str], group, rng: random.Random, per_question: float):
    """Unanswerable variants of answerable questions: a name or number the question shares with its
    gold text is swapped for another of the same kind from the same article, absent from that text."""
    by_group: dict[str, set[str]] = {}
    for doc_id, text in documents_text.items():
        by_group.setdefault(doc_id.split("/")[0], set()).update(m.group(0) for m in _SWAPPABLE.finditer(text))
    out = []
    for q in questions:
        if not q.answers or not q.source or rng.random() > per_question:
            continue
        # The text that answers: the evidence sentences where the set gives them (ours), else the
        # paragraph (SQuAD); the swapped-in name must not be in it.
        gold = " ".join(q.evidence) if q.evidence else documents_text.get(q.source, "")
        spans = [m for m in _SWAPPABLE.finditer(q.question) if m.start() > 0 and m.group(0) in gold]
        if not spans:
            continue
        m = rng.choice(spans)
        word = m.group(0)
        is_number = word[0].isdigit()
        pool = sorted(w for w in by_group.get(q.source.split("/")[0], ()) if w != word and w[0].isdigit() == is_number
                      and w not in gold and w not in q.question and len(w) > 2)
        if not pool:
            continue
        new = q.question[:m.start()] + rng.choice(pool) + q.question[m.end():]
        out.append(replace(q, id=f"{q.id}~nm", question=new, answers=(), evidence=(), type="near-miss"))
    return out


# ------------------------------------------------------------------------------------------ features

def collect(args) -> tuple[list[Item], dict]:
    from rag.answer import candidates
    from rag.pipeline import Assistant

    rng = random.Random(args.seed)
    items: list[Item] = []
    inputs = {}
    for name, index_dir, questions, group in load_sets(args):
        assistant = Assistant.load(index_dir)
        store = assistant.store
        texts = {i.doc_id: store.document(i.doc_id).text for i in store.catalog()}
        extra = near_misses(questions, texts, group, rng, per_question=args.near_miss) if name in ("squad", "own") else []
        t0 = time.perf_counter()
        for q in [*questions, *extra]:
            qvec = assistant.embed_query(q.question)
            hits = assistant.retriever.search(q.question, qvec, args.k)
            c = candidates(store, q.question, hits, qvec)
            records = [store.sentence(int(r)) for r in c.rows]
            sents = [r.text for r in records]
            golds = tuple(q.answers) + tuple(q.evidence)
            gold_docs = q.gold_docs
            docs = [r.doc_id for r in records]
            y = np.array([float(bool(golds) and holds(s, golds) and (not gold_docs or d in gold_docs))
                          for s, d in zip(sents, docs)])
            qtype = q.type or ("answerable" if q.answerable else "unanswerable")
            items.append(Item(name, f"{name}:{group(q)}", str(q.id), qtype, q.answerable and q.type != "near-miss",
                              c.X, y, sents, c))
        inputs[name] = {"questions": len(questions), "near_misses": len(extra), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name}: {len(questions)} questions + {len(extra)} near-misses", file=sys.stderr)
    inputs["files"] = {k: {"path": os.path.relpath(Path(getattr(args, k)).resolve(), ROOT), "sha256": _sha256(Path(getattr(args, k)))}
                       for k in ("squad", "wikiqa", "own", "seeds")}
    return items, inputs


# ------------------------------------------------------------------------------------------ fitting

def _weights(items: list[Item]) -> np.ndarray:
    """Per question: datasets weigh by the square root of their size, so SQuAD's thousands of
    questions lead without drowning the smaller sets."""
    sizes: dict[str, int] = {}
    for it in items:
        sizes[it.dataset] = sizes.get(it.dataset, 0) + 1
    return np.array([np.sqrt(sizes[it.dataset]) / sizes[it.dataset] * len(items) / sum(np.sqrt(list(sizes.values())))
                     for it in items])


def fit(items: list[Item]):
    from rag.answer import Logistic, question_features
    from rag.answer.candidates import QUESTION_FEATURES, SENTENCE_FEATURES

    w = _weights(items)
    rows = [(it, wi) for it, wi in zip(items, w) if it.answerable and len(it.y) and it.y.any()]
    X = np.vstack([it.X for it, _ in rows])
    y = np.concatenate([it.y for it, _ in rows])
    sw = np.concatenate([np.full(len(it.y), wi / len(it.y)) for it, wi in rows])
    sentence = Logistic.fit(SENTENCE_FEATURES, X, y, l2=L2_SENTENCE, weights=sw * len(sw) / sw.sum())
    Q = np.vstack([question_features(it.c, sentence.prob(it.X) if len(it.y) else np.zeros(0)) for it in items])
    a = np.array([float(it.answerable) for it in items])
    question = Logistic.fit(QUESTION_FEATURES, Q, a, l2=L2_QUESTION, weights=w)
    return sentence, question


def folds_of(items: list[Item], k: int, seed: int) -> np.ndarray:
    groups = sorted({it.group for it in items})
    random.Random(seed).shuffle(groups)
    fold = {g: i % k for i, g in enumerate(groups)}
    return np.array([fold[it.group] for it in items])


def cross_validate(items: list[Item], k: int, seed: int):
    """Held-out (sentence probabilities, confidence) for every item."""
    from rag.answer import question_features

    fold = folds_of(items, k, seed)
    probs: list = [None] * len(items)
    conf = np.zeros(len(items))
    for f in range(k):
        train = [it for it, g in zip(items, fold) if g != f]
        sentence, question = fit(train)
        for i in np.flatnonzero(fold == f):
            it = items[i]
            p = sentence.prob(it.X) if len(it.y) else np.zeros(0)
            probs[i] = p
            conf[i] = question.prob(question_features(it.c, p)[None, :])[0]
        print(f"fold {f + 1}/{k} done", file=sys.stderr)
    return probs, conf


# ------------------------------------------------------------------------------------------ figures

def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _top1_gold(it: Item, p: np.ndarray) -> bool:
    """Whether the sentence the model ranks first holds a gold string."""
    return bool(len(it.y)) and bool(it.y[int(np.argmax(p))])


def figures(items: list[Item], probs, conf: np.ndarray, refuse_below: float) -> dict:
    """Per dataset and per question type, on held-out predictions."""
    def one(sel: list[int]) -> dict:
        ans = np.array([items[i].answerable for i in sel])
        c = conf[sel]
        refused = c < refuse_below
        top = np.array([_top1_gold(items[i], probs[i]) for i in sel])
        n_ans, n_un = int(ans.sum()), int((~ans).sum())
        tp = int((refused & ~ans).sum())
        prec = tp / refused.sum() if refused.sum() else 0.0
        rec = tp / n_un if n_un else 0.0
        out = {"questions": len(sel), "answerable": n_ans, "unanswerable": n_un}
        if n_ans:
            out["top1_holds_gold"] = round(float(top[ans].mean()), 3)
            out["answered_and_top1_gold"] = round(float((top & ~refused)[ans].mean()), 3)
            out["false_refusal_rate"] = round(float(refused[ans].mean()), 3)
        if n_un:
            out.update({"refusal_precision": round(prec, 3), "refusal_recall": round(rec, 3),
                        "refusal_f1": round(2 * prec * rec / (prec + rec), 3) if prec + rec else 0.0})
        if n_ans and n_un:
            out["auc"] = round(auc(c, ans), 3)
        out["ece"] = round(M.calibration(c.tolist(), ans.tolist())["ece"], 3)
        return out

    report = {}
    for name in sorted({it.dataset for it in items}):
        sel = [i for i, it in enumerate(items) if it.dataset == name]
        report[name] = {"all": one(sel)}
        for t in sorted({items[i].type for i in sel}):
            report[name][t] = one([i for i in sel if items[i].type == t])
    return report


def choose_threshold(items: list[Item], conf: np.ndarray) -> float:
    """The highest refusal threshold whose held-out false-refusal rate, averaged over the training sets,
    stays under MAX_FALSE_REFUSAL: refusing an answerable question costs more than quoting a weak
    sentence labelled a possible answer, and no one set's taste decides alone."""
    names = sorted({it.dataset for it in items})
    ans = {n: np.array([it.answerable for it in items if it.dataset == n]) for n in names}
    confs = {n: np.array([conf[i] for i, it in enumerate(items) if it.dataset == n]) for n in names}
    best = 0.0
    for t in np.round(np.arange(0.01, 0.9, 0.01), 2):
        rates = [(confs[n][ans[n]] < t).mean() for n in names if ans[n].any()]
        if np.mean(rates) <= MAX_FALSE_REFUSAL:
            best = float(t)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.train", description=__doc__.split("\n\n")[0])
    for k, v in DEFAULTS.items():
        p.add_argument(f"--{k}", default=str(v))
    p.add_argument("--cache", default=".rag/cache", help="where the training indexes are built (reused)")
    p.add_argument("--out", default=str(ROOT / "rag" / "models" / "answer_model.json"))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-k", type=int, default=5, help="passages retrieved per question (as at answering time)")
    p.add_argument("--near-miss", type=float, default=1.0, help="share of answerable questions to make a near-miss from")
    p.add_argument("--report", default=None, help="write the held-out figures as JSON here")
    p.add_argument("--predictions", default=None, help="write each question's held-out confidence as JSON Lines here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    np.random.seed(args.seed)
    items, inputs = collect(args)
    probs, conf = cross_validate(items, args.folds, args.seed)
    refuse_below = choose_threshold(items, conf)
    held_out = figures(items, probs, conf, refuse_below)
    from rag.answer import AnswerModel

    sentence, question = fit(items)
    seconds = round(time.perf_counter() - t0, 1)
    from rag.text import TOKENIZER_VERSION

    meta = {"trained": time.strftime("%Y-%m-%d"), "tokenizer": TOKENIZER_VERSION, "command": "python -m evals.train " + " ".join(argv or sys.argv[1:]),
            "inputs": inputs, "settings": {"folds": args.folds, "seed": args.seed, "k": args.k, "near_miss": args.near_miss,
                                           "l2": [L2_SENTENCE, L2_QUESTION], "max_false_refusal": MAX_FALSE_REFUSAL},
            "held_out": held_out, "seconds": seconds}
    AnswerModel(sentence, question, refuse_below, max(CONFIDENT, refuse_below), meta).save(args.out)
    if args.report:
        Path(args.report).write_text(json.dumps(held_out, indent=1))
    if args.predictions:  # the held-out confidences, to study thresholds without retraining
        with open(args.predictions, "w", encoding="utf-8") as f:
            for it, c, p in zip(items, conf, probs):
                f.write(json.dumps({"dataset": it.dataset, "id": it.qid, "type": it.type, "answerable": it.answerable,
                                    "top1_gold": _top1_gold(it, p), "confidence": round(float(c), 6)}) + "\n")
    print(json.dumps(held_out, indent=1))
    print(f"refuse below {refuse_below}; model written to {args.out} in {seconds} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
