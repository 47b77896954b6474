from pathlib import Path

import pytest

from conftest import MINI, SEEDS
from rag.errors import NoDocuments, PathNotFound
from rag.ingest import date_line, decode, discover, ingest, parse, title_of
from rag.types import BODY, BOILERPLATE, DATE, HEADING, TITLE


@pytest.mark.parametrize("line, iso", [
    ("July 4, 2023", "2023-07-04"),
    (" date 2024-05-26 ", "2024-05-26"),
    ("Release time:Apr 13, 2024 21:36 PM", "2024-04-13"),
    ("Updated: May 27, 2022 09:11 China Daily", "2022-05-27"),
    ("4 July 2023", "2023-07-04"),
    ("Sept. 9, 2021", "2021-09-09"),
])
def test_date_lines_parse_to_iso(line, iso):
    assert date_line(line.strip()) == iso


@pytest.mark.parametrize("line", [
    "In 2021, the GDP of North China's Shanxi Province exceeded two trillion yuan and grew again in 2022 after July 4, 2021.",
    "February 30, 2023",  # not a real day
    "Hefei is a city",
])
def test_non_date_lines(line):
    assert date_line(line) is None


def test_title_drops_tag_suffix_and_rejects_paragraphs():
    assert title_of("Anhui Province Grasping Innovation | Innovation | Province") == "Anhui Province Grasping Innovation"
    assert title_of("# A Markdown Title", markdown=True) == "A Markdown Title"
    assert title_of("Hefei is big. It grows fast.") is None


def kinds(doc):
    return [(b.kind, doc.text[b.start:b.end]) for b in doc.blocks]


def test_alpha_lines_are_classified():
    doc = parse((MINI / "alpha.txt").read_text(encoding="utf-8"), "alpha.txt")
    assert doc.title == "Zephyr Dynamics opens a turbine plant in Lakeview"
    assert doc.date == "2021-03-03"
    assert [k for k, _ in kinds(doc)] == [BOILERPLATE, TITLE, DATE, BODY, BOILERPLATE, BODY, BODY, BOILERPLATE]
    for b in doc.blocks:  # blocks are stripped lines of the original text
        assert doc.text[b.start:b.end] == doc.text[b.start:b.end].strip() != ""


def test_headlines_with_tags_start_sections_and_duplicates_are_boilerplate():
    doc = parse((MINI / "sub" / "gamma.txt").read_text(encoding="utf-8"), "sub/gamma.txt")
    got = [(b.kind, b.section) for b in doc.blocks]
    assert got == [(TITLE, 0), (DATE, 0), (BODY, 0), (BODY, 0), (HEADING, 1), (BOILERPLATE, 1), (BODY, 1)]


def test_seed_boilerplate_is_found():
    doc = parse((SEEDS / "003_ea1ae904d6bef715.txt").read_text(encoding="utf-8"), "003")
    boiler = [t for k, t in kinds(doc) if k == BOILERPLATE]
    assert boiler[0] == "App"
    assert "Mobile" in boiler and "Desktop" in boiler
    assert any(t.startswith("Website Identification Code") for t in boiler)
    assert any(t.startswith("Copyright©") for t in boiler)
    assert doc.title == "China's inland rides waves of innovation, new opportunities"
    assert doc.date == "2022-05-27"


def test_seed_captions_are_boilerplate_and_001_has_no_title():
    doc = parse((SEEDS / "001_170ac16a23be116d.txt").read_text(encoding="utf-8"), "001")
    captions = [t for k, t in kinds(doc) if k == BOILERPLATE]
    assert len(captions) == 2 and all(t.endswith("Photo: Chen Tao/GT") for t in captions)
    assert doc.title is None and doc.date == "2024-05-26"


def test_seed_004_snippets_are_separate_sections():
    doc = parse((SEEDS / "004_9c7007180fbb4f3d.txt").read_text(encoding="utf-8"), "004")
    headings = [(b.section, doc.text[b.start:b.end][:25]) for b in doc.blocks if b.kind == HEADING]
    # three section headings of the article, then five unrelated news snippets
    assert [s for s, _ in headings] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert headings[3][1] == "Two women were stabbed to"
    assert headings[7][1] == "New comment: Donkey like "


def test_discover_ids_are_relative_paths(corpus):
    (corpus / "photo.png").write_bytes(b"\x89PNG")  # not a format any reader reads
    (corpus / ".hidden.txt").write_text("secret")
    files, warnings = discover([corpus])
    assert [i for i, _ in files] == ["alpha.txt", "beta.md", "sub/gamma.txt"]
    assert warnings == []


def test_symlink_loop_does_not_hang(corpus):
    (corpus / "sub" / "loop").symlink_to(corpus, target_is_directory=True)
    files, _ = discover([corpus])
    assert [i for i, _ in files] == ["alpha.txt", "beta.md", "sub/gamma.txt"]


def test_decode_fallbacks():
    assert decode("héllo".encode("utf-8")) == ("héllo", "utf-8")
    assert decode(b"\xef\xbb\xbfhi") == ("hi", "utf-8-sig")
    assert decode("hé".encode("utf-16")) == ("hé", "utf-16")
    assert decode("café".encode("latin-1")) == ("café", "cp1252")
    # Windows-1252's "…" is byte 0x85, which latin-1 would read as U+0085, a line break.
    assert decode(b"Wait\x85 then go.") == ("Wait\u2026 then go.", "cp1252")
    # 0x81 is undefined in Windows-1252: only latin-1 reads it.
    assert decode(b"a\x81b") == ("a\x81b", "latin-1")
    # A BOM followed by bytes that are not UTF-8: decoded as it reads, BOM bytes included.
    assert decode(b"\xef\xbb\xbfcaf\xe9") == ("\u00ef\u00bb\u00bfcaf\u00e9", "cp1252")
    with pytest.raises(UnicodeError):
        decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00")


def test_ingest_warns_names_file_and_keeps_good_files(tmp_path):
    (tmp_path / "good.txt").write_text("Good title\n\nThe river Alder floods every spring.\n", encoding="utf-8")
    (tmp_path / "old.txt").write_bytes("Caf\xe9 news\n\nThe caf\xe9 opened in Lyon in 1901.\n".encode("latin-1"))
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "empty.txt").write_text("")
    report = ingest([tmp_path])
    assert [d.doc_id for d in report.documents] == ["good.txt", "old.txt"]
    assert report.documents[1].text.startswith("Café news")
    warned = sorted(Path(w.split(":")[0]).name for w in report.warnings)
    assert warned == ["empty.txt", "image.txt", "old.txt"]


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(NoDocuments, match="No readable"):
        ingest([tmp_path])
    with pytest.raises(PathNotFound, match="does not exist"):
        ingest([tmp_path / "nope"])


def blocks_of(text, doc_id="any.txt"):
    doc = parse(text, doc_id)
    return doc, [(b.kind, doc.text[b.start:b.end]) for b in doc.blocks]


def test_first_sentence_of_an_untitled_file_is_body_not_title():
    doc, got = blocks_of("The ferry to Skye runs twice a day.\n\nIt stops in winter storms.\n")
    assert doc.title is None
    assert got == [(BODY, "The ferry to Skye runs twice a day."), (BODY, "It stops in winter storms.")]


def test_a_one_sentence_file_is_body():
    for text in ("The ferry to Skye runs twice a day.", "Ferry times for Skye\n", "  Ferry times  "):
        doc, got = blocks_of(text)
        assert doc.title is None and [k for k, _ in got] == [BODY]


def test_a_title_is_taken_only_where_marked():
    # a short unpunctuated first line set apart by a blank line
    doc, got = blocks_of("Ferry times change\n\nThe ferry to Skye runs twice a day.\n")
    assert doc.title == "Ferry times change" and got[0] == (TITLE, "Ferry times change")
    # ... or followed by a dateline
    doc, _ = blocks_of("Ferry times change\nMarch 3, 2021\nThe ferry runs twice a day.\n")
    assert (doc.title, doc.date) == ("Ferry times change", "2021-03-03")
    # ... or following a dateline, when the next line does not continue it
    doc, _ = blocks_of("March 3, 2021\nFerry times change\nThe ferry runs twice a day.\n")
    assert doc.title == "Ferry times change"
    doc, got = blocks_of("March 3, 2021\nThe ferry to Skye, which\nruns twice a day, is late.\n")
    assert doc.title is None and got[1] == (BODY, "The ferry to Skye, which\nruns twice a day, is late.")
    # ... or a short line the next line does not continue (a page title above its text)
    doc, _ = blocks_of("Ferry times change\nThe ferry runs twice a day.\n")
    assert doc.title == "Ferry times change"
    # a first line that ends a sentence, runs on into the next line, or is a list item, is body
    for text in ("Ferry times change.\n\nThe ferry runs twice a day.\n", "Ferry times change\nfrom May on.\n",
                 "The ferry to Skye will from the first of May onwards run\nTwice a day.\n",
                 "- Ferry times\n\nThe ferry runs twice a day.\n"):
        doc, got = blocks_of(text)
        assert doc.title is None and {k for k, _ in got} == {BODY}
    # a Markdown heading, and a title a dataset gives
    doc, _ = blocks_of("# Ferry times\nThe ferry runs twice a day.\n", "a.md")
    assert doc.title == "Ferry times"
    doc = parse("Ferry times change.\nThe ferry runs twice a day.", "q1", title="Ferry times change.")
    assert doc.title == "Ferry times change." and doc.blocks[0].kind == TITLE


def test_bullets_and_unpunctuated_lines_are_quotable_body():
    text = ("Market report\n\nThe fair lists three stalls:\n- Fresh bread from the mill\n"
            "- Cheese from the valley\n* Apples\n1. Honey\n\nPrices rose\n")
    doc, got = blocks_of(text)
    assert doc.title == "Market report"
    assert got[1:] == [(BODY, "The fair lists three stalls:"), (BODY, "- Fresh bread from the mill"),
                       (BODY, "- Cheese from the valley"), (BODY, "* Apples"), (BODY, "1. Honey"),
                       (BODY, "Prices rose")]
    assert {b.section for b in doc.blocks} == {0}


def test_a_heading_stands_alone_between_blank_lines():
    text = ("Port news\n\nThe port opened in May.\n\nNew Cranes Arrive\n\nTwo cranes came by sea.\n"
            "A line without a stop\nends on the next line.\n")
    doc, got = blocks_of(text)
    assert got[2] == (HEADING, "New Cranes Arrive")
    assert got[3:] == [(BODY, "Two cranes came by sea."), (BODY, "A line without a stop\nends on the next line.")]
    assert [b.section for b in doc.blocks] == [0, 0, 1, 1, 1]
    # in Markdown only "#" marks a heading
    doc, got = blocks_of("# Port news\n\nThe port opened.\n\nNew Cranes Arrive\n\nTwo came.\n", "p.md")
    assert [k for k, _ in got] == [TITLE, BODY, BODY, BODY]


def test_hard_wrapped_sentences_span_lines_with_exact_offsets():
    from rag.chunk import split

    text = ("Port news\r\n\r\nThe port of Karsvik, which the town council opened in\r\n"
            "May 1990, now handles grain, timber and fish from the\r\nnorth. Cranes came.\r\n")
    doc = parse(text, "w.txt")
    sentences = [text[s.start:s.end] for s in split(doc).sentences]
    assert sentences == ["The port of Karsvik, which the town council opened in\r\n"
                         "May 1990, now handles grain, timber and fish from the\r\nnorth.", "Cranes came."]


def test_unicode_line_separators_keep_offsets():
    from rag.chunk import split

    text = "Harbor log\n\nShips came.\u2028Ships went.\u2029Gulls\x85stayed. Rain\x0bfell.\x0cFog lifted.\n"
    doc = parse(text, "u.txt")
    for b in doc.blocks:
        assert doc.text[b.start:b.end] == doc.text[b.start:b.end].strip()
    quotes = [text[s.start:s.end] for s in split(doc).sentences]
    assert quotes == ["Ships came.", "Ships went.", "Gulls\x85stayed.", "Rain\x0bfell.", "Fog lifted."]


def test_duplicates_keep_the_indexed_document(tmp_path):
    (tmp_path / "b_original.txt").write_text("The mill grinds oats.\n", encoding="utf-8")
    (tmp_path / "a_copy.txt").write_text("The mill grinds oats.\n", encoding="utf-8")
    assert [d.doc_id for d in ingest([tmp_path]).documents] == ["a_copy.txt"]
    report = ingest([tmp_path], keep={"b_original.txt"})
    assert [d.doc_id for d in report.documents] == ["b_original.txt"]
    assert report.warnings == [f"{tmp_path / 'a_copy.txt'}: skipped, same text as b_original.txt"]


def test_same_relative_paths_in_three_folders_all_get_ids(tmp_path):
    for parent in ("x", "y", "z"):
        (tmp_path / parent / "news").mkdir(parents=True)
        (tmp_path / parent / "news" / "a.txt").write_text(f"Story from {parent}.", encoding="utf-8")
    files, _ = discover([tmp_path / p / "news" for p in ("x", "y", "z")])
    assert [(i, f.parent.parent.name) for i, f in files] == [("a.txt", "x"), ("news-2/a.txt", "z"), ("news/a.txt", "y")]
