"""The general text rules of rag/text.py, shown on invented news sentences (none from seeds/)."""
from __future__ import annotations

import pytest

from rag.text import TOKENIZER_VERSION, answer_type, leans_on_previous, numbers, tokenize

LEANS = [
    "The bridge opened in 1998.",                                   # which bridge?
    "It was built in 1937.",
    "These measures took effect in May.",
    "Its owners sold the land in 2004.",
    "They voted against the proposal on Tuesday.",
    "He resigned two weeks later.",
    "She told reporters the talks had stalled.",
    "His lawyers plan to appeal.",
    "Her husband declined to comment.",
    "Such fines are rare in the region.",
    "This was the third strike since March.",
    "That is why prices rose.",
    "Those who stayed were evacuated by boat.",
    "Both teams agreed to a replay.",
    "The latter has denied wrongdoing.",
    "The former was acquitted in 2011.",
    "The museum, which reopened last year, draws 2 million visitors.",  # description + comma
    "The new stadium will seat 60,000 fans.",                       # a number after the subject is fine
    "The tiny island's residents voted to leave.",                  # three-word description, regular past
    "The vaccine is stored at minus 70 degrees.",
    "the vaccine is stored at minus 70 degrees.",                   # lower-case start (bullet text)
    "\u201cIt is a huge relief,\u201d the mayor said.",             # opening quote mark skipped
    "\"They never called us,\" a resident said.",
    "'Its days are numbered,' he said.",
    "(They were later released.)",
    "But the airline said it would cut routes.",                    # connective skipped
    "However, they later dropped the charges.",
    "Today, the tunnel carries 40,000 cars a day.",
    "The ship sank within minutes.",                                # irregular past tense
]

NAMES_ITS_SUBJECT = [
    "The Golden Gate Bridge opened in 1937.",                       # proper noun
    "Italy's parliament passed the bill.",
    "The 2020 census counted 331 million people.",                  # a number in the description
    "The covid-19 vaccine is stored at minus 70 degrees.",
    "The U.S. embassy was closed on Friday.",
    "The president of Brazil signed the decree.",                   # description followed by "of Brazil"
    "The World Health Organization declared an emergency.",
    "The rapper Drake said he would tour.",
    "The price of imported goods has doubled.",                     # "of …" says which price
    "The number of arrests rose sharply.",
    "The senior officials of the agency resigned.",
    "The man who called police was detained.",
    "The quarterly report from the central bank showed a surplus.", # longer than three words: not judged
    "Heavy rain flooded parts of Dhaka on Monday.",
    "Mount Everest is 8,849 metres tall.",
    "There are 12 bridges across the river.",                       # "there" points at nothing
    "Researchers at Oxford published the study.",
    "Both Airbus and Boeing reported delays.",
    "This year, exports rose by 4 percent.",                        # time expressions, not anaphors
    "This past week brought record heat.",
    "The next day, police arrested two men.",
    "That same evening, the mayor resigned.",
    "Herbert Kroemer won the prize in 2000.",                       # "Her…" is not "her"
    "Italian police arrested the suspect.",                         # "It…" is not "it"
    "Theft rose by 12 percent.",                                    # "The…" is not "the"
    "\u201cWe will keep the plant open,\u201d the minister said.",
    "",
    "\u201c",
]


@pytest.mark.parametrize("sentence", LEANS)
def test_sentence_that_leans_on_the_previous_one_for_its_subject(sentence):
    assert leans_on_previous(sentence) is True


@pytest.mark.parametrize("sentence", NAMES_ITS_SUBJECT)
def test_sentence_that_names_its_own_subject(sentence):
    assert leans_on_previous(sentence) is False


def test_thousands_separators_do_not_change_the_tokens_of_a_number():
    assert tokenize("2,000 jobs") == tokenize("2000 jobs") == ["2000", "job"]
    assert tokenize("1,234,567 voters") == ["1234567", "voter"]
    assert tokenize("a 1,00,000-rupee fine") == ["100000", "rupe", "fine"]  # Indian grouping


def test_tokens_and_numbers_agree_on_every_figure():
    text = "Exports of 2,000 cars, up 17.1 percent since 1998, brought in $1,234,567.50 and 3,500,000 euros."
    figures = {"2000", "17.1", "1998", "1234567.50", "3500000"}
    assert numbers(text) == figures
    assert figures <= set(tokenize(text))
    assert numbers("2,000") == numbers("2000") == {"2000"}


def test_decimals_and_years_stay_as_written():
    assert tokenize("17.1 percent") == ["17.1", "percent"]
    assert tokenize("It opened in 1998.") == ["open", "1998"]
    assert numbers("It opened in 1998.") == {"1998"}
    assert tokenize("2.000") == ["2.000"]  # a dot is a decimal point: "2.000" as thousands is ambiguous


def test_a_comma_between_numbers_that_is_not_a_thousands_separator_splits_them():
    assert tokenize("rooms 1,2 and 12,34") == ["room", "1", "2", "12", "34"]
    assert numbers("rooms 1,2 and 12,34") == {"1", "2", "12", "34"}
    assert tokenize("a list: 12,0000") == ["list", "12", "0000"]


def test_general_abbreviations_are_spelled_out_in_their_usual_forms():
    assert tokenize("GDP grew") == tokenize("gdp grew") == ["gdp", "gross", "domest", "product", "grew"]
    assert tokenize("R&D spending") == ["research", "develop", "spend"]
    assert tokenize("AI chips") == tokenize("ai chips") == ["ai", "artifici", "intellig", "chip"]


def test_abbreviation_lookalikes_and_sector_jargon_are_left_alone():
    assert tokenize("Ai Weiwei spoke in Berlin") == ["ai", "weiwei", "spoke", "berlin"]  # a name, not "AI"
    assert tokenize("VR headsets") == ["vr", "headset"]
    assert tokenize("IoT sensors") == ["iot", "sensor"]
    assert tokenize("SMEs borrowed more") == ["smes", "borrow"]


def test_tokenizer_version_is_bumped_for_the_number_and_abbreviation_changes():
    assert TOKENIZER_VERSION == 3


@pytest.mark.parametrize("question, kind", [
    ("Who designed the new terminal at Lisbon airport?", "person"),
    ("Whose paintings were stolen from the gallery?", "person"),
    ("Which company won the contract for the dam?", "person"),
    ("How many people attended the marathon?", "number"),
    ("How much did the stadium cost?", "number"),
    ("What percentage of voters turned out?", "number"),
    ("When did the ferry service resume?", "date"),
    ("In which year was the cathedral finished?", "date"),
    ("What date is the referendum?", "date"),
    ("Where is the shipyard located?", "place"),
    ("Which city will host the summit?", "place"),
    ("Why did the talks collapse?", None),
    ("What does the new law require?", None),
])
def test_answer_type_of_invented_questions(question, kind):
    assert answer_type(question) == kind


def test_focus_terms_are_the_names_and_numbers_a_question_mentions():
    from rag.text import focus_terms

    assert focus_terms("When did the Oresund Bridge open to 2,000 cars?") == {"oresund", "bridg", "2000"}
    assert focus_terms("Who founded Acme?") == {"acm"}  # the first word is capitalised anyway
    assert focus_terms("how big is bmc software") == frozenset()


def test_a_company_suffix_is_not_a_new_name_for_who():
    from rag.text import offers

    q = "Who is the chief engineer of Brightwater Pumps?"
    assert not offers("Brightwater Pumps Co., Ltd. opened in 2011.", "person", q)
    assert not offers("Brightwater Pumps Group grew fast.", "person", q)
    assert offers("Chief engineer Mara Quill said the pumps are ready.", "person", q)


def test_name_terms_skip_words_capitalised_by_position():
    from rag.text import name_terms

    s = '“To build it. Only then can Chinese firms lead,” said Mara Quill of (Zephyr) Dynamics.'
    # "To" opens the quote, "Only" a quoted sentence, "Zephyr" a bracket: capitalised wherever they stand
    assert name_terms(s) == {"chines", "mara", "quill", "dynam"}
    assert name_terms("Lakeview grew.") == frozenset()  # the first word of the text
    assert name_terms("in 2021 the plant grew") == frozenset()


@pytest.mark.parametrize("text, expected", [
    ("Which plant does not build turbines?", True),
    ("Why didn't the plant open?", True),
    ("Why didn’t the plant open?", True),  # a typographic apostrophe, as articles write it
    ("It never opened.", True),
    ("Which firm grew without subsidies?", True),
    ("Where is the plant?", False),
    ("Notable firms knocked on the door.", False),  # "not" and "no" inside other words
])
def test_negated(text, expected):
    from rag.text import negated

    assert negated(text) is expected
