
import pytest

from fakes import KeywordEmbedder
from rag import index as storage
from rag.errors import RagError
from rag.pipeline import Assistant, build
from ui.library import MAX_UPLOAD_BYTES, Library, UploadRejected, check_upload, place, rows, safe_name


@pytest.mark.parametrize("name, safe", [
    ("report.txt", "report.txt"),
    ("../../etc/passwd", "passwd.txt"),
    ("..\\..\\windows\\evil.md", "evil.md"),
    ("/abs/path/notes.md", "notes.md"),
    (".hidden.txt", "hidden.txt"),
    ("we ird$name!.txt", "we_ird_name_.txt"),
    ("..", "upload.txt"),
    ("", "upload.txt"),
])
def test_safe_names_never_leave_the_folder(name, safe):
    assert safe_name(name) == safe


def test_uploads_are_checked(tmp_path):
    ok = tmp_path / "a.txt"
    ok.write_text("Title\n\nThe harbor parade drew visitors.\n")
    check_upload(ok, "a.txt")
    with pytest.raises(UploadRejected, match="only .txt and .md"):
        check_upload(ok, "a.exe")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(UploadRejected, match="over the 10 MB limit"):
        check_upload(big, "big.txt")
    png = tmp_path / "p.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(UploadRejected, match="not a text file"):
        check_upload(png, "p.txt")
    empty = tmp_path / "e.md"
    empty.write_text("")
    with pytest.raises(UploadRejected, match="empty"):
        check_upload(empty, "e.md")


def test_place_sanitises_and_never_overwrites(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("x")
    lib = tmp_path / "lib"
    assert place(lib, src, "../../escape.txt") == lib / "escape.txt"
    assert place(lib, src, "escape.txt") == lib / "escape-2.txt"
    assert sorted(p.name for p in tmp_path.rglob("*.txt")) == ["escape-2.txt", "escape.txt", "src.txt"]


@pytest.fixture
def lib(corpus, tmp_path):
    e = KeywordEmbedder()
    build([corpus], tmp_path / "idx", embedder=e)
    return Library(tmp_path / "idx", tmp_path / "library", e), e


def load(library):
    return Assistant.load(library.index_dir, embedder=library.embedder)


def test_add_then_remove_an_upload(lib, tmp_path):
    library, e = lib
    up = tmp_path / "upload.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"%PDF")
    e.embedded.clear()
    added, problems = library.add([(up, "ferry.txt"), (bad, "x.pdf")])
    assert added == ["ferry.txt"] and problems == ["x.pdf: only .txt and .md files can be added"]
    # only the new file was embedded: its one passage (with title) and its one sentence
    assert e.embedded == ["Ferry news\nThe harbor ferry carries 900 visitors a day.", "The harbor ferry carries 900 visitors a day."]
    a = load(library)
    assert [r.source for r in rows(a.index)] == ["alpha.txt", "beta.md", "ferry.txt", "sub/gamma.txt"]
    assert a.ask("harbor ferry visitors").citations[0].doc_id == "ferry.txt"
    assert library.remove(a.index, "ferry.txt") == "Removed ferry.txt and deleted its copy in the library."
    assert not (tmp_path / "library" / "ferry.txt").exists()
    a = load(library)
    assert "ferry.txt" not in [d.doc_id for d in a.index.docs]
    assert all(h.chunk.doc_id != "ferry.txt" for h in a.ask("harbor ferry visitors").hits)


def test_removing_a_source_document_keeps_the_file(lib, corpus):
    library, e = lib
    a = load(library)
    assert library.remove(a.index, "beta.md") == "Removed beta.md from the index (the file itself is untouched)."
    assert (corpus / "beta.md").exists()
    assert [d.doc_id for d in load(library).index.docs] == ["alpha.txt", "sub/gamma.txt"]
    # a plain re-index keeps it out; --include-removed brings it back
    assert build(None, library.index_dir, embedder=e).excluded == 1
    assert [d.doc_id for d in load(library).index.docs] == ["alpha.txt", "sub/gamma.txt"]
    build(None, library.index_dir, embedder=e, include_removed=True)
    assert [d.doc_id for d in load(library).index.docs] == ["alpha.txt", "beta.md", "sub/gamma.txt"]
    assert storage.read_excluded(library.index_dir) == set()


def test_remove_unknown_or_last_document(lib, tmp_path):
    library, e = lib
    a = load(library)
    with pytest.raises(RagError, match="Document not found"):
        library.remove(a.index, "../../etc/passwd")
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "one.txt").write_text("One\n\nThe only harbor story.\n")
    build([solo], tmp_path / "i2", embedder=e)
    lone = Library(tmp_path / "i2", tmp_path / "lib2", e)
    with pytest.raises(RagError, match="last document"):
        lone.remove(Assistant.load(tmp_path / "i2", embedder=e).index, "one.txt")
