"""Question + ranked passages -> Answer: candidate sentences (candidates.py), the learned answer model
(model.py, shipped as JSON in rag/models/), and which sentences to quote or whether to refuse (select.py)."""
from rag.answer.candidates import Candidates, candidates, question_features
from rag.answer.model import AnswerModel, Logistic
from rag.answer.select import Answerer, ExtractiveAnswerer

__all__ = ["AnswerModel", "Answerer", "Candidates", "ExtractiveAnswerer", "Logistic", "candidates", "question_features"]
