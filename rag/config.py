"""Settings with their defaults. Index-time settings are recorded in the manifest; query-time
settings may change between runs without re-indexing."""
from __future__ import annotations

import math
import numbers
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


def default_cache_dir() -> Path:
    """Where the model's ONNX export is kept, once per model fingerprint, for every index of this user:
    ``$RAG_CACHE_DIR`` if set, else ``rag/`` in ``$XDG_CACHE_HOME`` (default ``~/.cache``). Per user,
    not per folder, so `rag ask` run from anywhere finds the export its index was built with."""
    if os.environ.get("RAG_CACHE_DIR"):
        return Path(os.environ["RAG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag"


@dataclass(frozen=True)
class ChunkSettings:
    """Index-time: changing any of these forces a re-embed."""

    sentences_per_chunk: int = 3
    overlap: int = 1  # sentences shared by consecutive chunks
    max_words: int = 120  # all-MiniLM-L6-v2 reads ~256 word pieces; stay well under
    title_in_passage: bool = True  # prepend the title to the text that is embedded and BM25-indexed

    def __post_init__(self) -> None:
        whole_number("sentences_per_chunk", self.sentences_per_chunk, 1)
        whole_number("overlap", self.overlap, 0, self.sentences_per_chunk - 1, "sentences_per_chunk - 1")
        whole_number("max_words", self.max_words, 10)
        _flag("title_in_passage", self.title_in_passage)

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
    complete_answers: bool = True  # add a following sentence holding the asked-for kind of answer
    max_sentences: int = 3
    max_chars: int = 400
    # Outcomes by the answer model's calibrated confidence (None: the thresholds shipped with the model):
    # refuse below min_confidence, quote as a "possible answer" below confident, else answer.
    min_confidence: float | None = None
    confident: float | None = None

    def __post_init__(self) -> None:
        whole_number("top_k", self.top_k, 1)
        for name in ("min_confidence", "confident"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), 0.0, 1.0)
        if not isinstance(self.fusion, str) or self.fusion not in FUSIONS:
            raise BadSetting(f"fusion must be one of {', '.join(FUSIONS)}. Currently, fusion is {self.fusion!r}")
        whole_number("rrf_k", self.rrf_k, 0)
        _number("dense_weight", self.dense_weight, 0.0, 1.0)
        whole_number("candidates", self.candidates, 1)
        _flag("complete_answers", self.complete_answers)
        whole_number("max_sentences", self.max_sentences, 1, 3)
        whole_number("max_chars", self.max_chars, 1)


def whole_number(name: str, value, low: int, high: int | None = None, high_name: str | None = None) -> int:
    """``value`` if it is an int in [low, high] (bool is not a number here).

    Raises:
        BadSetting: naming ``name`` and the value.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) \
            and low <= value and (high is None or value <= high):
        return value
    if high is None:
        rule = f"of at least {low}"
    else:
        rule = f"from {low} to {high_name} ({high})" if high_name else f"from {low} to {high}"
    raise BadSetting(f"{name} must be a whole number {rule}. Currently, {name} is {value!r}")


def _number(name: str, value, low: float | None = None, high: float | None = None) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
        and (low is None or value >= low) and (high is None or value <= high)
    if ok:
        return
    if low is not None and high is not None:
        rule = f"a number from {low:g} to {high:g}"
    elif low is not None:
        rule = f"a finite number of at least {low:g}"
    else:
        rule = "a finite number"
    raise BadSetting(f"{name} must be {rule}. Currently, {name} is {value!r}")


def _flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise BadSetting(f"{name} must be True or False. Currently, {name} is {value!r}")
