"""Question-set files -> Dataset (questions, and for BEIR/SQuAD the documents to index).

Formats, detected from the path: our JSONL (a .jsonl file), a BEIR folder (corpus.jsonl, queries.jsonl,
qrels/test.tsv) and SQuAD v1.1/v2.0 JSON (a .json file with "data").
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.ingest import parse
from rag.types import Document

EXPECTED = ("a question set: a .jsonl file of questions, a BEIR folder (corpus.jsonl, queries.jsonl, "
            "qrels/test.tsv) or a SQuAD .json file")


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
    article: str | None = None  # the document a question was written about, answerable or not (SQuAD)

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


class BadQuestionSet(RagError):
    def __init__(self, path, why: str) -> None:
        super().__init__(f"{path}: {why}; expected {EXPECTED}")


@dataclass(frozen=True)
class Dataset:
    kind: str  # "jsonl" | "beir" | "squad"
    path: Path
    questions: list[Question]
    documents: list[Document] | None = None  # None: use the current index
    content_hash: str | None = None


def load(path: str | Path) -> Dataset:
    """The dataset at ``path``.

    Raises:
        BadQuestionSet: missing, unreadable or of no known format.
    """
    p = Path(path)
    if not p.exists():
        raise BadQuestionSet(p, "does not exist")
    try:
        if p.is_dir():
            if (p / "corpus.jsonl").is_file() and (p / "queries.jsonl").is_file() and (p / "qrels" / "test.tsv").is_file():
                return load_beir(p)
            raise BadQuestionSet(p, "is a folder without corpus.jsonl, queries.jsonl and qrels/test.tsv")
        if p.suffix == ".jsonl":
            return Dataset("jsonl", p, load_jsonl(p))
        if p.suffix == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("data"), list):
                return load_squad(p, data)
            raise BadQuestionSet(p, "is JSON without a SQuAD \"data\" list")
    except (ValueError, KeyError, TypeError, UnicodeError) as e:
        if isinstance(e, RagError):
            raise
        raise BadQuestionSet(p, f"cannot be parsed ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise BadQuestionSet(p, f"cannot be read ({e.strerror or e})") from None
    raise BadQuestionSet(p, "has an unknown extension")


def _hash_files(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def load_beir(p: Path) -> Dataset:
    docs = []
    for line in (p / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        title, text = (r.get("title") or "").strip(), r.get("text") or ""
        # The title is its own first line, so it is searchable and shown, but never quoted.
        docs.append(parse(f"{title}\n{text}" if title else text, str(r["_id"]), title=title or None))
    queries = {}
    for line in (p / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            queries[str(r["_id"])] = r["text"]
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate((p / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()):
        parts = line.strip().split("\t")
        if len(parts) < 3 or (n == 0 and not parts[-1].lstrip("-").isdigit()):
            continue  # header or blank line
        qid, did, grade = parts[0], parts[1], int(parts[-1])
        qrels.setdefault(qid, {})[did] = grade
    questions = [Question(id=qid, question=queries[qid], relevant=rel) for qid, rel in qrels.items() if qid in queries]
    return Dataset("beir", p, questions, docs, _hash_files(p / "corpus.jsonl", p / "queries.jsonl", p / "qrels" / "test.tsv"))


def load_squad(p: Path, data: dict) -> Dataset:
    """SQuAD articles as documents ``<article>/<paragraph>``: the article is named by its title, else
    its ``document_id`` (sets of long papers carry no title), else its position in the file."""
    docs, questions = [], []
    for n, article in enumerate(data["data"]):
        title = article.get("title") or None
        name = title or str(article.get("document_id") or "") or f"article-{n}"
        for i, para in enumerate(article["paragraphs"]):
            doc_id = f"{name}/{i}"
            doc = parse(para["context"], doc_id)
            docs.append(replace(doc, title=title or doc.title))
            for qa in para.get("qas", []):
                impossible = bool(qa.get("is_impossible"))
                answers = () if impossible else tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                questions.append(Question(id=qa["id"], question=qa["question"], answers=answers,
                                          source=None if impossible else doc_id, type="impossible" if impossible else "answerable",
                                          article=doc_id))
    return Dataset("squad", p, questions, docs, _hash_files(p))
