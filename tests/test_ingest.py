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
    (corpus / "notes.pdf").write_bytes(b"%PDF")
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
    assert decode("café".encode("latin-1")) == ("café", "latin-1")
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
