"""The learned answer model: two logistic regressions shipped as JSON (never pickled).

``sentence`` gives, per candidate sentence, the probability that it answers the question; ``question``
gives, from the candidates as a whole, the calibrated probability that the articles answer the
question at all. ``python -m evals.train`` rebuilds the file and records what it was trained on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag.answer.candidates import QUESTION_FEATURES, SENTENCE_FEATURES
from rag.errors import RagError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "models" / "answer_model.json"
FORMAT = 1


class AnswerModelMissing(RagError):
    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"The answer model at {path} {why}: reinstall rag, or rebuild it with `python -m evals.train`")


@dataclass(frozen=True)
class Logistic:
    """p = sigmoid(((x - mean) / scale) · coef + intercept)."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def prob(self, X: np.ndarray) -> np.ndarray:
        z = ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

    @classmethod
    def fit(cls, names: Sequence[str], X: np.ndarray, y: np.ndarray, l2: float = 1.0,
            weights: np.ndarray | None = None, iterations: int = 50) -> "Logistic":
        """Maximum likelihood with an L2 penalty ``l2`` on the standardised coefficients (Newton's
        method; deterministic). ``weights`` weigh the examples (e.g. to balance datasets)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        Z = np.hstack([(X - mean) / scale, np.ones((len(X), 1))])
        beta = np.zeros(Z.shape[1])
        penalty = np.full(Z.shape[1], l2)
        penalty[-1] = 0.0  # the intercept is not shrunk
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-np.clip(Z @ beta, -40, 40)))
            gradient = Z.T @ (w * (p - y)) + penalty * beta
            hessian = (Z * (w * p * (1 - p))[:, None]).T @ Z + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hessian, gradient)
            beta -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(tuple(names), mean, scale, beta[:-1].copy(), float(beta[-1]))

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.names), "mean": self.mean.round(10).tolist(), "scale": self.scale.round(10).tolist(),
                "coef": self.coef.round(10).tolist(), "intercept": round(self.intercept, 10)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Logistic":
        return cls(tuple(d["features"]), np.array(d["mean"], dtype=np.float64), np.array(d["scale"], dtype=np.float64),
                   np.array(d["coef"], dtype=np.float64), float(d["intercept"]))


@dataclass(frozen=True)
class AnswerModel:
    sentence: Logistic
    question: Logistic
    min_confidence: float  # refuse below
    confident: float  # a "possible answer" below, a confident answer at or above
    meta: dict[str, Any] = field(default_factory=dict)  # what it was trained on, settings, held-out figures

    @classmethod
    def load(cls, path: str | Path | None = None) -> "AnswerModel":
        """The model at ``path`` (default: the one shipped in rag/models/).

        Raises:
            AnswerModelMissing: the file is missing, unreadable, or made for other features.
        """
        path = Path(path) if path else DEFAULT_PATH
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            model = cls(Logistic.from_json(d["sentence"]), Logistic.from_json(d["question"]),
                        float(d["min_confidence"]), float(d["confident"]), d.get("meta", {}))
        except FileNotFoundError:
            raise AnswerModelMissing(path, "is missing") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise AnswerModelMissing(path, "cannot be read") from None
        if d.get("format") != FORMAT or model.sentence.names != SENTENCE_FEATURES or model.question.names != QUESTION_FEATURES:
            raise AnswerModelMissing(path, "was made for other features than this version computes")
        return model

    def save(self, path: str | Path) -> None:
        d = {"format": FORMAT, "sentence": self.sentence.to_json(), "question": self.question.to_json(),
             "min_confidence": self.min_confidence, "confident": self.confident, "meta": self.meta}
        Path(path).write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
