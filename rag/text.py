"""Word-level text helpers shared by BM25 and the answerer, so both see the same terms."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

# Bump when tokenize() changes: indexes record it, and a different value forces a BM25 rebuild.
# 3: numbers lose their thousands separators; only general abbreviations are spelled out.
TOKENIZER_VERSION = 3

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

# A comma inside a number is a thousands separator only before a group of three digits (groups of two
# before it allow Indian "1,00,000"); any other comma separates two numbers ("rooms 1,2"). A dot is
# always a decimal point: "2.000" as two thousand is ambiguous, so it is left as written.
_NUMBER = re.compile(r"\d{1,3}(?:,\d{2})*(?:,\d{3})+(?:\.\d+)*(?!\d)|\d+(?:\.\d+)*")
_TOKEN = re.compile(_NUMBER.pattern + r"|[^\W\d_]+", re.UNICODE)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


# Abbreviations spelled out on both sides, so "R&D" in a query meets "research and development". Only
# ones every section of the news uses and a general dictionary lists; sector jargon the seed articles
# happen to use (IoT, VR, SMEs) is left out, as the table would otherwise favour those articles' topics.
# Each is matched as usually written or in lower case as people type it, never in title case, where
# "Ai" is a name (Ai Weiwei).
_ABBREVIATIONS = {"R&D": "research and development", "AI": "artificial intelligence", "GDP": "gross domestic product"}
_ABBREV = re.compile(r"\b(" + "|".join(re.escape(f) for k in _ABBREVIATIONS for f in (k, k.lower())) + r")\b")


def normalize(text: str) -> str:
    """NFKC, typographic quotes and dashes made plain, general abbreviations spelled out, lower case."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return _ABBREV.sub(lambda m: f"{m.group(0)} {_ABBREVIATIONS[m.group(0).upper()]}", text).lower()


def tokenize(text: str) -> list[str]:
    """Stemmed content terms; a number is one term without thousands separators ("17.1"; "2,000" is
    "2000"), the same string numbers() gives for it."""
    words = [w for w in _TOKEN.findall(normalize(text).replace("'s ", " ")) if w not in STOPWORDS]
    words = [w.replace(",", "") if w[0].isdigit() else w for w in words if len(w) > 1 or w.isdigit()]
    return _stemmer().stemWords(words)


def numbers(text: str) -> set[str]:
    """The numbers written in ``text``, without thousands separators, as tokenize() spells them."""
    return {n.replace(",", "") for n in _NUMBER.findall(unicodedata.normalize("NFKC", text))}


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


_FOCUS = re.compile(r"(?<!^)\b[A-Z][\w'’-]*|\b\d[\d,.]*")


def focus_terms(question: str) -> frozenset[str]:
    """The terms of the names and numbers a question mentions (capitalised words past its first word,
    and figures): what an answer must be about. A near-miss swaps one of them."""
    return frozenset(tokenize(" ".join(m.group(0) for m in _FOCUS.finditer(question.strip()))))


def answer_type(question: str) -> str | None:
    """What kind of answer a question asks for: person, number, date, place, or None."""
    q = normalize(question)
    for kind, pattern in _WH:
        if pattern.search(q):
            return kind
    return None


_CAPITALISED = re.compile(r"\b[A-Z][\w'’-]*")
_OPENS = frozenset(".!?:;\"“‘'([")


def name_terms(text: str) -> frozenset[str]:
    """The terms of the names ``text`` mentions: capitalised words, except where any word would be (at
    the start of the text, of a sentence quoted inside it, or after an opening quote or bracket)."""
    words = []
    for m in _CAPITALISED.finditer(text):
        i = m.start() - 1
        while i >= 0 and text[i].isspace():
            i -= 1
        if i >= 0 and text[i] not in _OPENS:
            words.append(m.group(0))
    return frozenset(tokenize(" ".join(words)))


_NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|nobody|neither|nor|without|cannot)\b|n['’]t\b", re.I)


def negated(text: str) -> bool:
    """Whether ``text`` holds a negation ("not", "never", "didn't", "without"...). A negated question
    whose best sentence is not negated asks the opposite of what the sentence says: one of the ways
    SQuAD 2.0's writers made answerable-looking questions unanswerable."""
    return _NEGATION.search(text) is not None


_COMPANY_SUFFIXES = frozenset("co ltd inc corp llc plc gmbh ag sa nv bv pty group company corporation limited holdings".split())


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
        # A company's legal suffix is not a new name: "Acme Tools Co., Ltd." names no one new.
        return any(new(" ".join(w for w in m.group(0).split() if w.lower() not in _COMPANY_SUFFIXES))
                   for m in _NAME.finditer(sentence))
    return any(new(m.group(0)) for m in _CAPITAL.finditer(sentence[1:]))  # place: a proper noun past the first word


# Words that point back at something already named. Personal pronouns and possessives always do;
# demonstratives ("this", "these measures") and "both" do unless they open a time expression ("this
# year", "that same evening") or, for "both", name their referents ("Both Airbus and Boeing").
_PERSONAL = frozenset("it its they their them he she his her".split())
_DEMONSTRATIVE = frozenset("this these that those such both".split())
_TIME_NOUN = frozenset("""moment time morning afternoon evening night day days weekend week weeks month months
season seasons quarter year years decade century spring summer autumn fall winter""".split())
# Openers that come before the subject without being it ("But they …", "However, the firm …").
_CONNECTIVE = frozenset("and but yet so still however meanwhile instead moreover furthermore also now today "
                        "then later".split())
# Words that can follow a short definite description only as its verb: auxiliaries, adverbs that sit
# before a verb, and common irregular past tenses; regular "-ed" and "-s" forms are recognised by shape.
_VERB = frozenset("""is was are were be been has had have will would can could should may might must does did
do also still now already never first recently then only became began brought built came cost cut drew fell
found gave got grew held hit kept knew led left lost made met paid put ran rang rose sank sat saw said sent set
shut sold spent spoke stood struck swam took told threw went won wore wrote""".split())
# A preposition, article, conjunction or relative word inside a description says which one is meant
# ("The impact of higher rates …", "The man who …"), so the sentence names its own subject.
_SPECIFIER = frozenset("""of in on at for with from by to into onto about over under between among after before
during since than as like near and or nor a an the who whom whose which that where when""".split())
_OPENING = re.compile(r"[^\w,;:]*([^\W_]+(?:['’\-][^\W_]+)*|[,;:])")


def _opening_words(sentence: str, n: int = 8) -> list[str]:
    """The first ``n`` words and clause commas, past quote marks and brackets."""
    words, pos = [], 0
    while len(words) < n and (m := _OPENING.match(sentence, pos)) and m.end() > pos:
        words.append(m.group(1))
        pos = m.end()
    return words


def _verbish(word: str, following: str) -> bool:
    if word in _VERB:
        return True
    if not word.isalpha() or len(word) < 4:
        return False
    # "-s" before "of" is a plural noun ("The senior officials of …"), not a verb.
    return word.endswith("ed") or (word.endswith("s") and not word.endswith(("ss", "us", "is")) and following != "of")


def leans_on_previous(sentence: str) -> bool:
    """Whether the sentence leans on the one before it for its subject ("It opened in 1998.", "The
    bridge opened in 1998."), so a quote of it alone would not say what it is about.

    The rule looks only at how the sentence opens, past quote marks and a leading connective ("But",
    "However,"): a personal pronoun or possessive (it, its, they, their, them, he, she, his, her), "the
    latter"/"the former", or a demonstrative (this, these, that, those, such, both) not opening a time
    expression ("This year, …") leans on what came before. So does a definite description: "the" and
    one to three lower-case words directly followed by a comma or a verb ("The bridge opened …", "The
    tiny island's residents voted …"). A capitalised word or a digit in the description means the
    sentence names its own subject ("The Golden Gate Bridge …", "The 2020 census …"), and so does a
    preposition, article or relative word ("The price of oil …", "The man who …"), as does any other
    opening ("Italy's parliament …"). A description of four or more words is not judged.
    """
    words = _opening_words(sentence)
    while words and words[0].lower() in _CONNECTIVE:
        words = words[2:] if words[1:2] == [","] else words[1:]
    if not words:
        return False
    first = words[0].lower()
    if first in _PERSONAL:
        return True
    if first in _DEMONSTRATIVE:
        after = words[1:3]
        if any(w.lower() in _TIME_NOUN for w in after):
            return False
        return not (first == "both" and after and after[0][:1].isupper())
    if first != "the" or len(words) < 2:
        return False
    if words[1].lower() in ("latter", "former"):
        return True
    for i, word in enumerate(words[1:5], start=1):
        described = i > 1
        if word == "," and described:
            return words[i - 1] not in _TIME_NOUN
        if described and _verbish(word, words[i + 1] if i + 1 < len(words) else ""):
            return words[i - 1] not in _TIME_NOUN
        if not word.islower() or any(c.isdigit() for c in word) or word in _SPECIFIER:
            return False
    return False
