"""Every setting is validated on construction, and the message names the field and its bad value."""
import math

import pytest

from rag.config import ChunkSettings, Settings
from rag.errors import BadSetting

WHOLE_1 = "must be a whole number of at least 1"
UNIT = "must be a number from 0 to 1"


@pytest.mark.parametrize("field, value, message", [
    ("top_k", 0, f"top_k {WHOLE_1}. Currently, top_k is 0"),
    ("top_k", -1, f"top_k {WHOLE_1}. Currently, top_k is -1"),
    ("top_k", 2.5, f"top_k {WHOLE_1}. Currently, top_k is 2.5"),
    ("top_k", "5", f"top_k {WHOLE_1}. Currently, top_k is '5'"),
    ("top_k", True, f"top_k {WHOLE_1}. Currently, top_k is True"),
    ("fusion", "max", "fusion must be one of rrf, score, dense, bm25. Currently, fusion is 'max'"),
    ("rrf_k", -1, "rrf_k must be a whole number of at least 0. Currently, rrf_k is -1"),
    ("rrf_k", 60.0, "rrf_k must be a whole number of at least 0. Currently, rrf_k is 60.0"),
    ("dense_weight", 1.5, f"dense_weight {UNIT}. Currently, dense_weight is 1.5"),
    ("dense_weight", -0.1, f"dense_weight {UNIT}. Currently, dense_weight is -0.1"),
    ("dense_weight", math.nan, f"dense_weight {UNIT}. Currently, dense_weight is nan"),
    ("dense_weight", None, f"dense_weight {UNIT}. Currently, dense_weight is None"),
    ("candidates", 0, f"candidates {WHOLE_1}. Currently, candidates is 0"),
    ("complete_answers", "yes", "complete_answers must be True or False. Currently, complete_answers is 'yes'"),
    ("max_sentences", 4, "max_sentences must be a whole number from 1 to 3. Currently, max_sentences is 4"),
    ("max_sentences", 0, "max_sentences must be a whole number from 1 to 3. Currently, max_sentences is 0"),
    ("max_chars", 0, f"max_chars {WHOLE_1}. Currently, max_chars is 0"),
    ("min_confidence", 1.5, f"min_confidence {UNIT}. Currently, min_confidence is 1.5"),
    ("confident", math.nan, f"confident {UNIT}. Currently, confident is nan"),
])
def test_a_bad_setting_is_named_with_its_value(field, value, message):
    with pytest.raises(BadSetting) as e:
        Settings(**{field: value})
    assert str(e.value) == message


@pytest.mark.parametrize("field, value, message", [
    ("sentences_per_chunk", 0, f"sentences_per_chunk {WHOLE_1}. Currently, sentences_per_chunk is 0"),
    ("overlap", 3, "overlap must be a whole number from 0 to sentences_per_chunk - 1 (2). Currently, overlap is 3"),
    ("overlap", -1, "overlap must be a whole number from 0 to sentences_per_chunk - 1 (2). Currently, overlap is -1"),
    ("max_words", 9, "max_words must be a whole number of at least 10. Currently, max_words is 9"),
    ("max_words", 100.0, "max_words must be a whole number of at least 10. Currently, max_words is 100.0"),
    ("title_in_passage", 1, "title_in_passage must be True or False. Currently, title_in_passage is 1"),
])
def test_a_bad_chunk_setting_is_named_with_its_value(field, value, message):
    with pytest.raises(BadSetting) as e:
        ChunkSettings(**{field: value})
    assert str(e.value) == message


def test_limits_themselves_are_accepted():
    Settings(top_k=1, rrf_k=0, dense_weight=0.0, candidates=1, min_confidence=0.0, confident=1.0,
             complete_answers=False, max_sentences=1, max_chars=1)
    Settings(dense_weight=1, min_confidence=1, confident=0)
    ChunkSettings(sentences_per_chunk=1, overlap=0, max_words=10, title_in_passage=False)


@pytest.mark.parametrize("k", [0, -1, 2.0, "3", True])
def test_ask_refuses_a_bad_k(mini_assistant, k):
    with pytest.raises(BadSetting) as e:
        mini_assistant.ask("Where is Zephyr Dynamics based?", k=k)
    assert str(e.value) == f"k {WHOLE_1}. Currently, k is {k!r}"


def test_ask_k_none_means_the_configured_top_k_and_k_counts_hits(mini_assistant):
    assert len(mini_assistant.ask("harbor parade", k=None).hits) == mini_assistant.settings.top_k == 5
    assert len(mini_assistant.ask("harbor parade", k=2).hits) == 2
