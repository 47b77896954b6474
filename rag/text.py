"""Word-level text helpers shared by BM25 and the answerer, so both see the same terms."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

# Function words plus question words: neither says anything about which passage answers.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was
we were what when where which while who whom whose why will with would you your yours yourself
yourselves tell say said says please many much kind
""".split())

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def normalize(text: str) -> str:
    """NFKC, typographic quotes and dashes made plain, lower case."""
    return unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()


def tokenize(text: str) -> list[str]:
    """Stemmed content terms; numbers are kept whole ("17.1", "2,000") so they can be told apart."""
    words = [w for w in _TOKEN.findall(normalize(text).replace("'s ", " ")) if w not in STOPWORDS]
    words = [w.rstrip(".,") if w[0].isdigit() else w for w in words]
    return _stemmer().stemWords(words)


def numbers(text: str) -> set[str]:
    """The numbers written in ``text``, with thousands separators removed."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}
