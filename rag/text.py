"""Word-level text helpers shared by BM25 and the answerer, so both see the same terms."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

# Bump when tokenize() changes: indexes record it, and a different value forces a BM25 rebuild.
TOKENIZER_VERSION = 2

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


# Abbreviations spelled out on both sides, so "R&D" in a query meets "research and development".
_ABBREVIATIONS = {"r&d": "research and development", "ai": "artificial intelligence", "gdp": "gross domestic product",
                  "iot": "internet of things", "vr": "virtual reality", "smes": "small and medium-sized enterprises"}
_ABBREV = re.compile(r"\b(" + "|".join(re.escape(k) for k in _ABBREVIATIONS) + r")\b")


def normalize(text: str) -> str:
    """NFKC, typographic quotes and dashes made plain, lower case, common abbreviations spelled out."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return _ABBREV.sub(lambda m: f"{m.group(0)} {_ABBREVIATIONS[m.group(0)]}", text)


def tokenize(text: str) -> list[str]:
    """Stemmed content terms; numbers are kept whole ("17.1", "2,000") so they can be told apart."""
    words = [w for w in _TOKEN.findall(normalize(text).replace("'s ", " ")) if w not in STOPWORDS]
    words = [w.rstrip(".,") if w[0].isdigit() else w for w in words if len(w) > 1 or w.isdigit()]
    return _stemmer().stemWords(words)


def numbers(text: str) -> set[str]:
    """The numbers written in ``text``, with thousands separators removed."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


_WH = (
    ("person", re.compile(r"\b(who|whom|whose)\b|\b(which|what) (person|official|executive|expert|researcher|scientist|company|firm)\b|\bname of\b")),
    ("number", re.compile(r"\bhow (many|much|big|large|long|tall|high|far|fast|old)\b|\b(what|which) (percentage|share|proportion|number|amount|rate|figure|value|sum|size)\b|\bby how\b|\bwhat (was|is) the (total|average|growth)")),
    ("date", re.compile(r"\bwhen\b|\b(what|which) (year|date|day|month|time)\b|\bon what dates?\b")),
    ("place", re.compile(r"\bwhere\b|\b(which|what) (city|province|country|place|region|town|village|district|county|site|zone)\b|\bin which\b")),
)
_MONTH_WORD = re.compile(r"\b(January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\b")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)s?\b")
_NUMBER_WORD = re.compile(r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|trillion|dozens?|half)\b", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+|\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+(?=,? (said|told|added|stated|noted|of|the)\b)")
_CAPITAL = re.compile(r"\b[A-Z][a-zA-Z]+")


def answer_type(question: str) -> str | None:
    """What kind of answer a question asks for: person, number, date, place, or None."""
    q = normalize(question)
    for kind, pattern in _WH:
        if pattern.search(q):
            return kind
    return None


def offers(sentence: str, kind: str | None, question: str) -> bool:
    """Whether ``sentence`` holds something of the asked kind that the question does not already say."""
    if kind is None:
        return False
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    def new(words: str) -> bool:
        return any(w.lower() not in asked for w in re.findall(r"\w+", words))
    if kind == "number":
        return bool(numbers(sentence) - numbers(question)) or any(new(m.group(0)) for m in _NUMBER_WORD.finditer(sentence))
    if kind == "date":
        return any(new(m.group(0)) for m in _MONTH_WORD.finditer(sentence)) or any(new(m.group(0)) for m in _YEAR.finditer(sentence))
    if kind == "person":
        return any(new(m.group(0)) for m in _NAME.finditer(sentence))
    return any(new(m.group(0)) for m in _CAPITAL.finditer(sentence[1:]))  # place: a proper noun past the first word
