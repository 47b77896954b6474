"""Settings with their defaults. Index-time settings are recorded in the manifest; query-time
settings may change between runs without re-indexing."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.errors import BadSetting

FORMAT_VERSION = 1
DEFAULT_INDEX_DIR = ".rag/index"
FUSIONS = ("rrf", "score", "dense", "bm25")


def default_index_dir() -> Path:
    """``$RAG_INDEX_DIR`` if set, else ``.rag/index`` under the current directory."""
    return Path(os.environ.get("RAG_INDEX_DIR") or DEFAULT_INDEX_DIR)


@dataclass(frozen=True)
class ChunkSettings:
    """Index-time: changing any of these forces a re-embed."""

    sentences_per_chunk: int = 3
    overlap: int = 1  # sentences shared by consecutive chunks
    max_words: int = 120  # all-MiniLM-L6-v2 reads ~256 word pieces; stay well under
    title_in_passage: bool = True  # prepend the title to the text that is embedded and BM25-indexed

    def __post_init__(self) -> None:
        if self.sentences_per_chunk < 1:
            raise BadSetting(f"sentences_per_chunk must be >= 1. Currently, it is {self.sentences_per_chunk}")
        if not 0 <= self.overlap < self.sentences_per_chunk:
            raise BadSetting(f"overlap must be in [0, sentences_per_chunk). Currently, it is {self.overlap}")
        if self.max_words < 10:
            raise BadSetting(f"max_words must be >= 10. Currently, it is {self.max_words}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Settings:
    """Query-time settings."""

    top_k: int = 5
    fusion: str = "score"
    rrf_k: int = 60
    dense_weight: float = 0.5  # for "score" fusion: weight of the min-max normalised dense score
    candidates: int = 50  # how many passages each retriever proposes before fusion
    # Sentence scoring: semantic similarity + IDF-weighted coverage of the question's terms.
    w_semantic: float = 0.6
    w_lexical: float = 0.5
    w_rank: float = 0.05
    w_type: float = 0.1  # bonus when a sentence holds the kind of answer asked for (a name for "who", ...)
    context: float = 0.5  # share of the previous sentence's question terms credited to a sentence
    abstain_below: float = 0.69  # calibrated on evals/questions.jsonl (tune) and WikiQA dev: see evals/README.md
    complete_answers: bool = True  # add a following sentence holding the asked-for kind of answer
    max_sentences: int = 3
    max_chars: int = 400

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise BadSetting(f"top_k must be greater than 0. Currently, top_k is {self.top_k}")
        if self.fusion not in FUSIONS:
            raise BadSetting(f"fusion must be one of {', '.join(FUSIONS)}. Currently, fusion is {self.fusion!r}")
        if self.candidates < 1:
            raise BadSetting(f"candidates must be greater than 0. Currently, candidates is {self.candidates}")
        if not 1 <= self.max_sentences <= 3:
            raise BadSetting(f"max_sentences must be 1, 2 or 3. Currently, it is {self.max_sentences}")
