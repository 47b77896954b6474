import re

from hypothesis import given, settings, strategies as st

from conftest import MINI, SEEDS
from rag.chunk import sentence_spans, split, windows
from rag.config import ChunkSettings
from rag.ingest import parse
from rag.types import BODY


def seed_docs():
    return [parse(p.read_text(encoding="utf-8"), p.name) for p in sorted(SEEDS.glob("*.txt"))]


def test_windows_share_overlap_and_respect_word_cap():
    cs = ChunkSettings(sentences_per_chunk=3, overlap=1, max_words=100)
    # 7 sentences of 10 words: [0,3) [2,5) [4,7)
    assert windows([10] * 7, cs) == [(0, 3), (2, 5), (4, 7)]
    # 10 + 90 = 100 words still fits the cap of 100
    assert windows([10, 90, 10, 10], cs) == [(0, 2), (1, 3), (2, 4)]
    # a 95-word sentence fits with no neighbour (10 + 95 = 105 > 100): windows shrink instead
    assert windows([10, 95, 10, 10], cs) == [(0, 1), (1, 2), (2, 4)]
    assert windows([], cs) == []
    assert windows([500], cs) == [(0, 1)]


def test_mini_chunks_slice_back_and_stay_in_sections():
    doc = parse((MINI / "sub" / "gamma.txt").read_text(encoding="utf-8"), "sub/gamma.txt")
    parts = split(doc)
    assert [c.text for c in parts.chunks] == [
        "The Frostline research station sits on the Verglas glacier. Scientists at Frostline measure ice melt every day.\n\n"
        "Last summer the glacier lost 2.4 meters of ice.",
        "Last summer the glacier lost 2.4 meters of ice. The loss was the largest since records began in 1950.",
        "The harbor parade drew 30,000 visitors on Sunday. Marching bands played until midnight.",
    ]
    assert [c.section for c in parts.chunks] == [0, 0, 1]


def test_seed_offsets_are_exact_and_chunks_never_cross_sections():
    for doc in seed_docs():
        parts = split(doc)
        body = [(b.start, b.end) for b in doc.blocks if b.kind == BODY]
        for s in parts.sentences:
            text = doc.text[s.start:s.end]
            assert text == text.strip() and text
            assert any(bs <= s.start and s.end <= be for bs, be in body), "sentence outside body text"
        for c, (lo, hi) in zip(parts.chunks, parts.ranges):
            assert doc.text[c.start:c.end] == c.text
            assert {parts.sentences[i].section for i in range(lo, hi)} == {c.section}
            assert len(c.text.split()) <= 120 or hi - lo == 1


def test_no_seed_chunk_mixes_snippet_stories():
    doc = next(d for d in seed_docs() if d.doc_id.startswith("004"))
    for c in split(doc).chunks:
        assert not ("Hong Kong" in c.text and "Henan" in c.text)
        assert not ("Shenzhou" in c.text and "naval fleet" in c.text)


def test_boilerplate_never_becomes_a_sentence():
    doc = parse((MINI / "alpha.txt").read_text(encoding="utf-8"), "alpha.txt")
    texts = [doc.text[s.start:s.end] for s in split(doc).sentences]
    assert texts == [
        "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.",
        "The company was founded in 2009 by Mara Quill.",
        "The new plant will build 400 turbines a year.",
        "It cost 120 million dollars to build.",
        "Output at the plant grew 17.1 percent last year, while exports grew 18.2 percent.",
    ]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=600))
def test_property_offsets_slice_back_for_any_text(text):
    doc = parse(text, "any.txt")
    parts = split(doc, ChunkSettings(sentences_per_chunk=2, overlap=1, max_words=30))
    for s in parts.sentences:
        assert doc.text[s.start:s.end].strip() == doc.text[s.start:s.end] != ""
    for c in parts.chunks:
        assert doc.text[c.start:c.end] == c.text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["Dr. Smith went home.", "It rained!", "Was it 3.5 m?", "“Yes,” he said.",
                                 "U.S. firms grew 4.2%.", "\n", "\n\n", "  ", "e.g. this", "…"]), max_size=30))
def test_property_sentences_cover_words_in_order(parts):
    text = " ".join(parts)
    spans = sentence_spans(text)
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    covered = "".join(text[s:e] for s, e in spans)
    assert "".join(covered.split()) == "".join(text.split())


def test_splitter_versions_agree():
    from rag import chunk
    from rag.store import generations

    assert chunk.VERSION == generations.SPLITTER_VERSION


def test_a_long_sentence_is_cut_at_its_strongest_clause_break():
    from rag.chunk import MAX_QUOTE_CHARS, clauses

    t = ("The regional government said on Monday that the new rail line, which will link the port with three inland "
         "cities and the airport, would open to passengers in the spring of 2027; officials expect it to carry 40,000 "
         "passengers a day in its first year, while freight trains will run at night, and a second phase, costing 2 "
         "billion dollars, will extend the line to the northern border towns and the mountain resorts by 2032.")
    assert len(t) > MAX_QUOTE_CHARS
    pieces = [t[s:e] for s, e in clauses(t, 0, len(t))]
    # the semicolon beats every comma; each piece is a verbatim span, and together they are the sentence
    assert pieces == [t[:t.index(";") + 1], t[t.index(";") + 2:]]
    # offsets index the whole text, wherever the sentence sits in it
    framed = "Earlier text. " + t + " Later text."
    assert [framed[s:e] for s, e in clauses(framed, 14, 14 + len(t))] == pieces
    # short sentences, and long ones with no clause break, stay whole
    assert clauses("The ferry runs twice a day.", 0, 27) == [(0, 27)]
    long = "word " * 80
    assert clauses(long, 0, len(long) - 1) == [(0, len(long) - 1)]


def _sentences(text):
    return [text[s:e] for s, e in sentence_spans(text)]


def test_a_markdown_image_does_not_end_a_sentence():
    t = ("The museum posted a photo of the restored bridge ![The bridge at dusk](https://example.org/img/bridge.jpg) "
         "on its website. Visitors can cross it from May.")
    assert _sentences(t) == ["The museum posted a photo of the restored bridge ![The bridge at dusk]"
                             "(https://example.org/img/bridge.jpg) on its website.", "Visitors can cross it from May."]
    # with nothing after it, too
    t = "The agency released a satellite image of the flooded valley ![](https://example.org/valley.png)"
    assert _sentences(t) == [t]


def test_a_mark_inside_a_token_does_not_end_a_sentence():
    url = ("The council's page at https://example.gov/notice?id=42&lang=en lists the new fees. "
           "Residents have until June to object.")
    assert _sentences(url) == ["The council's page at https://example.gov/notice?id=42&lang=en lists the new fees.",
                               "Residents have until June to object."]
    css = "The leaked stylesheet hid the banner with display: none !important on phones. Engineers removed it."
    assert _sentences(css) == ["The leaked stylesheet hid the banner with display: none !important on phones.",
                               "Engineers removed it."]
    code = "The audit flagged a check written as total != expected in the billing code. It was fixed in March."
    assert _sentences(code) == ["The audit flagged a check written as total != expected in the billing code.",
                                "It was fixed in March."]


def test_exclamation_marks_before_a_lowercase_word_do_not_end_a_sentence():
    t = "What a finish?! fans asked after the final whistle. The club said nothing."
    assert _sentences(t) == ["What a finish?! fans asked after the final whistle.", "The club said nothing."]
    t = "Shares of Yahoo! rose 3 percent on Monday, and the Jeopardy! host signed a new contract. Analysts were surprised."
    assert _sentences(t) == ["Shares of Yahoo! rose 3 percent on Monday, and the Jeopardy! host signed a new contract.",
                             "Analysts were surprised."]


def test_a_real_exclamation_still_ends_a_sentence():
    assert _sentences("Wow! That was fast, the mayor said.") == ["Wow!", "That was fast, the mayor said."]
    assert _sentences("The fans had waited ten years for this!! The parade starts at noon.") == [
        "The fans had waited ten years for this!!", "The parade starts at noon."]
    t = 'The guard shouted "Stop!" and ran after the thief. Police arrived later.'
    assert _sentences(t) == ['The guard shouted "Stop!" and ran after the thief.', "Police arrived later."]


def test_joined_sentences_keep_offsets_into_the_whole_text():
    body = "Read the report at https://example.net/r?page=2 before Friday. Then vote."
    framed = "Headline text.\n\n" + body + "\n\nFooter."
    lo = framed.index(body)
    spans = sentence_spans(framed, lo, lo + len(body))
    assert [framed[s:e] for s, e in spans] == ["Read the report at https://example.net/r?page=2 before Friday.", "Then vote."]
    assert spans[0][0] == lo


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["Wow!", "That was fast.", "![map](https://e.org/m.png)", "https://e.org/a?b=1", "!important",
                                 "Yahoo!", "rose", "?!", "Ugh!!", "that", "“Stop!”", "He", "said.", "x != y", "Mr.", "?", "!",
                                 "\n", "fell![3]"]), max_size=25))
def test_property_marks_that_end_nothing_only_join_sentences(parts):
    from rag import chunk

    text = " ".join(parts)
    new = sentence_spans(text)
    saved = chunk._NOT_AN_END
    chunk._NOT_AN_END = re.compile(r"(?!)")  # matches nothing: the segmenter's own cuts
    try:
        old = sentence_spans(text)
    finally:
        chunk._NOT_AN_END = saved
    # each sentence joins consecutive sentences of the segmenter: the first one's start to the last one's end
    k = 0
    for s, e in new:
        assert old[k][0] == s
        while old[k][1] != e:
            k += 1
        k += 1
    assert k == len(old)


def test_pysbd_compiles_each_of_its_patterns_once_with_the_calls_of_re():
    """pysbd passes pattern strings to re.sub and the like, more than re's 512-entry cache holds: its
    modules get an ``re`` that keeps them, with re's own signatures (a flag or count given by position
    lands where re puts it)."""
    import re

    import pysbd.abbreviation_replacer as pysbd_abbreviations

    from rag.chunk import sentence_spans

    sentence_spans("Dr. Smith arrived. He left.")
    cached = pysbd_abbreviations.re
    assert cached is not re and cached.IGNORECASE == re.IGNORECASE
    text = "ab AB ab Ab"
    assert cached.sub("ab", "x", text, 2) == re.sub("ab", "x", text, 2) == "x AB x Ab"
    assert cached.sub("ab", "x", text, flags=re.I) == "x x x x"
    assert cached.findall("a(b)", text, re.I) == re.findall("a(b)", text, re.I) == ["b", "B", "b", "b"]
    assert cached.split(" ", text, 1) == ["ab", "AB ab Ab"]
    assert [m.span() for m in cached.finditer("ab", text)] == [(0, 2), (6, 8)]
    assert cached.search("AB", text).start() == 3 and cached.match("ab", text) and not cached.fullmatch("ab", text)
