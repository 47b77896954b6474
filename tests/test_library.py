import hashlib
import os
import shutil
from pathlib import Path

import pytest

from fakes import KeywordEmbedder
from rag.store import generations as storage
from rag.store import excluded as removals
from rag import pipeline
from rag.errors import RagError
from rag.pipeline import Assistant, build
from ui.library import (MAX_UPLOAD_BYTES, Library, UpdateFailed, UploadRejected, check_upload, place, rows,
                        safe_name)


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
    with pytest.raises(UploadRejected, match=r"only \.txt, \.md, \.html and \.pdf"):
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
    assert added == ["ferry.txt"] and problems == ["x.pdf: not a readable PDF (PdfStreamError: Stream has ended unexpectedly)"]
    # only the new file was embedded: its one passage (with title) and its one sentence
    assert e.embedded == ["Ferry news\nThe harbor ferry carries 900 visitors a day.", "The harbor ferry carries 900 visitors a day."]
    a = load(library)
    assert [r.source for r in rows(a.store)] == ["alpha.txt", "beta.md", "ferry.txt", "sub/gamma.txt"]
    assert a.ask("harbor ferry visitors").citations[0].doc_id == "ferry.txt"
    assert library.remove(a.store, "ferry.txt") == "Removed ferry.txt. It can be restored under Removed documents."
    assert not (tmp_path / "library" / "ferry.txt").exists()
    a = load(library)
    assert "ferry.txt" not in [d.doc_id for d in a.store.catalog()]
    assert all(h.chunk.doc_id != "ferry.txt" for h in a.ask("harbor ferry visitors").hits)


def test_removing_a_source_document_keeps_the_file(lib, corpus):
    library, e = lib
    a = load(library)
    assert library.remove(a.store, "beta.md") == "Removed beta.md (its file is untouched). It can be restored under Removed documents."
    assert (corpus / "beta.md").exists()
    assert [d.doc_id for d in load(library).store.catalog()] == ["alpha.txt", "sub/gamma.txt"]
    # a plain re-index keeps it out; --include-removed brings it back
    assert build(None, library.index_dir, embedder=e).excluded == 1
    assert [d.doc_id for d in load(library).store.catalog()] == ["alpha.txt", "sub/gamma.txt"]
    build(None, library.index_dir, embedder=e, include_removed=True)
    assert [d.doc_id for d in load(library).store.catalog()] == ["alpha.txt", "beta.md", "sub/gamma.txt"]
    assert removals.read_excluded(library.index_dir) == set()


def test_remove_unknown_or_last_document(lib, tmp_path):
    library, e = lib
    a = load(library)
    with pytest.raises(RagError, match="Document not found"):
        library.remove(a.store, "../../etc/passwd")
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "one.txt").write_text("One\n\nThe only harbor story.\n")
    build([solo], tmp_path / "i2", embedder=e)
    lone = Library(tmp_path / "i2", tmp_path / "lib2", e)
    with pytest.raises(RagError, match="last document"):
        lone.remove(Assistant.load(tmp_path / "i2", embedder=e).store, "one.txt")


def test_a_failed_copy_leaves_no_partial_file(lib, tmp_path, monkeypatch):
    library, _ = lib
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")

    def disk_full(src, dst):
        Path(dst).write_text("Ferry ne")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(UploadRejected, match=r"^ferry.txt: could not be saved in the library \(No space left on device\)$"):
        place(library.library_dir, up, "ferry.txt")
    assert files(library) == []
    assert library.add([(up, "ferry.txt")]) == ([], ["ferry.txt: could not be saved in the library (No space left on device)"])
    assert files(library) == []


# ------------------------------------------------------------------ every upload ends indexed or refused


def files(library) -> list[str]:
    """What the library folder holds, hidden files included."""
    return sorted(p.name for p in library.library_dir.iterdir()) if library.library_dir.exists() else []


def indexed(library) -> dict[str, str]:
    """doc_id -> sha256 of what the index holds now."""
    return {k: v["sha256"] for k, v in storage.read_manifest(library.index_dir)[1]["documents"].items()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_stranded(library):
    """Every file in the library folder is a document of the index, so the page lists it and can remove it."""
    held = {str(Path(v["path"]).resolve()) for v in storage.read_manifest(library.index_dir)[1]["documents"].values()}
    assert [name for name in files(library) if str((library.library_dir / name).resolve()) not in held] == []


def test_uploads_the_index_would_not_hold_are_refused_before_copying(lib, corpus, tmp_path):
    library, _ = lib
    before = indexed(library)
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n\t \n")
    copy = tmp_path / "copy.md"
    copy.write_bytes((corpus / "beta.md").read_bytes())
    retyped = tmp_path / "retyped.txt"  # other bytes (a BOM), the same text
    retyped.write_bytes(b"\xef\xbb\xbf" + (corpus / "sub" / "gamma.txt").read_bytes())
    ferry = tmp_path / "ferry.txt"
    ferry.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    again = tmp_path / "again.txt"
    again.write_bytes(ferry.read_bytes())
    added, problems = library.add([(blank, "blank.txt"), (copy, "copy.md"), (retyped, "retyped.txt"),
                                   (ferry, "ferry.txt"), (again, "again.txt")], store=load(library).store)
    assert added == ["ferry.txt"]
    assert problems == ["blank.txt: the file has no text in it, only blank space",
                        "copy.md: same text as beta.md, which is already in the library",
                        "retyped.txt: same text as sub/gamma.txt, which is already in the library",
                        "again.txt: same text as ferry.txt, added just before it"]
    assert files(library) == ["ferry.txt"]
    assert indexed(library) == {**before, "ferry.txt": sha(ferry)}


def test_a_copy_named_to_sort_first_does_not_displace_the_original(lib, corpus, tmp_path):
    library, _ = lib
    before = indexed(library)
    up = tmp_path / "up.txt"
    up.write_bytes((corpus / "alpha.txt").read_bytes())
    # no index given: the bytes alone, checked against the manifest, are enough to refuse it
    assert library.add([(up, "000_aaa.txt")]) == ([], ["000_aaa.txt: same text as alpha.txt, which is already in the library"])
    assert files(library) == [] and indexed(library) == before
    assert load(library).ask("Where is Zephyr Dynamics based?").citations[0].doc_id == "alpha.txt"


def test_an_upload_the_build_skips_is_deleted_and_its_reason_given(lib, tmp_path):
    library, _ = lib
    before = indexed(library)
    footer = tmp_path / "footer.txt"  # site furniture only: ingest finds no article text in it
    footer.write_text("Copyright © 2024 Example News. All rights reserved.\n")
    ferry = tmp_path / "ferry.txt"
    ferry.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    added, problems = library.add([(footer, "footer.txt"), (ferry, "ferry.txt")])
    assert (added, problems) == (["ferry.txt"], ["footer.txt: not added, no article text in it"])
    assert files(library) == ["ferry.txt"] and indexed(library) == {**before, "ferry.txt": sha(ferry)}


def test_an_added_name_is_the_id_the_index_lists(lib, tmp_path):
    library, _ = lib
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    # alpha.txt is also a document of the mini corpus: the library's copy is listed under its folder
    added, problems = library.add([(up, "alpha.txt")])
    assert (added, problems) == (["library/alpha.txt"], [])
    assert "library/alpha.txt" in [r.source for r in rows(load(library).store)]


@pytest.mark.parametrize("text", ["The harbor ferry carries 900 visitors a day.\n", "Ferry news\n",
                                  "Copyright © 2024 Example News. All rights reserved.\n", " \n\u00a0\n",
                                  "*\n", "Zephyr\n\nZephyr\n"])
def test_every_upload_ends_listed_or_refused_with_nothing_left(lib, tmp_path, text):
    library, _ = lib
    up = tmp_path / "up.txt"
    up.write_text(text, encoding="utf-8")
    added, problems = library.add([(up, "one.txt")])
    if added:
        assert (added, problems) == (["one.txt"], []) and "one.txt" in [r.source for r in rows(load(library).store)]
    else:
        assert len(problems) == 1 and problems[0].startswith("one.txt: ") and files(library) == []
    assert_nothing_stranded(library)


def build_that_fails(monkeypatch, after_writing: bool, times: int = 1):
    """rag.pipeline.build failing its first ``times`` calls: before touching the index, or after
    writing the new index (as when exporting the model fails). Returns the list of calls."""
    real, calls = pipeline.build, []

    def build(*args, **kwargs):
        calls.append(kwargs.get("remove", ()))
        if len(calls) <= times:
            if after_writing:
                real(*args, **kwargs)
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build", build)
    return calls


@pytest.mark.parametrize("after_writing", [False, True])
def test_a_failed_build_leaves_no_upload_and_the_index_as_it_was(lib, tmp_path, monkeypatch, after_writing):
    library, _ = lib
    before = indexed(library)
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    calls = build_that_fails(monkeypatch, after_writing)
    with pytest.raises(UpdateFailed) as e:
        library.add([(up, "ferry.txt")])
    assert str(e.value) == ("Could not add ferry.txt: indexing failed (OSError: [Errno 28] No space left on device). "
                            "Nothing was added; try again.")
    assert len(calls) == 2 and files(library) == [] and indexed(library) == before
    monkeypatch.undo()
    assert "ferry.txt" not in [d.doc_id for d in load(library).store.catalog()]


def test_when_putting_the_index_back_fails_too_the_message_says_so_in_page_words(lib, tmp_path, monkeypatch):
    library, _ = lib
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    build_that_fails(monkeypatch, after_writing=True, times=2)
    with pytest.raises(UpdateFailed) as e:
        library.add([(up, "ferry.txt")])
    assert str(e.value) == ("Could not add ferry.txt: indexing failed (OSError: [Errno 28] No space left on device). "
                            "Putting the index back failed too (OSError: [Errno 28] No space left on device): "
                            "answers may be out of date until whoever runs this server re-indexes the library.")
    assert files(library) == []


def failing_reload(monkeypatch):
    def load(cls, *args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(pipeline.Assistant, "load", classmethod(load))


def test_a_failed_reload_after_an_upload_takes_it_out_again(lib, tmp_path, monkeypatch):
    from ui.app import Holder

    library, e = lib
    holder = Holder(library.index_dir, e)
    shown = holder.assistant
    before = indexed(library)
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    failing_reload(monkeypatch)
    with pytest.raises(UpdateFailed) as err:
        library.add([(up, "ferry.txt")], store=holder.assistant.store, after=holder.reload)
    assert str(err.value) == ("Could not add ferry.txt: reloading the index failed (OSError: [Errno 12] Cannot allocate "
                              "memory). Nothing was added; try again.")
    assert holder.assistant is shown and files(library) == [] and indexed(library) == before
    monkeypatch.undo()
    holder.reload()
    assert [d.doc_id for d in holder.assistant.store.catalog()] == ["alpha.txt", "beta.md", "sub/gamma.txt"]


@pytest.mark.parametrize("after_writing", [False, True])
def test_a_failed_removal_keeps_the_upload_and_its_document(lib, tmp_path, monkeypatch, after_writing):
    library, _ = lib
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    assert library.add([(up, "ferry.txt")]) == (["ferry.txt"], [])
    before = indexed(library)
    calls = build_that_fails(monkeypatch, after_writing)
    with pytest.raises(UpdateFailed) as e:
        library.remove(load(library).store, "ferry.txt")
    assert str(e.value) == ("Could not remove ferry.txt: indexing failed (OSError: [Errno 28] No space left on device). "
                            "ferry.txt is still in the library; try again.")
    assert len(calls) == 2 and files(library) == ["ferry.txt"] and indexed(library) == before
    monkeypatch.undo()
    a = load(library)
    assert "ferry.txt" in [r.source for r in rows(a.store)]
    assert a.ask("harbor ferry visitors").citations[0].doc_id == "ferry.txt"


def test_a_failed_reload_after_a_removal_puts_the_upload_back(lib, tmp_path, monkeypatch):
    from ui.app import Holder

    library, e = lib
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    assert library.add([(up, "ferry.txt")]) == (["ferry.txt"], [])
    holder = Holder(library.index_dir, e)
    before = indexed(library)
    failing_reload(monkeypatch)
    with pytest.raises(UpdateFailed, match=r"^Could not remove ferry.txt: reloading the index failed \(OSError"):
        library.remove(holder.assistant.store, "ferry.txt", after=holder.reload)
    assert files(library) == ["ferry.txt"] and indexed(library) == before


def test_a_failed_removal_of_a_source_document_keeps_it_indexed(lib, corpus, monkeypatch):
    library, _ = lib
    before = indexed(library)
    build_that_fails(monkeypatch, after_writing=True)  # the removal was recorded and written, then the build failed
    with pytest.raises(UpdateFailed, match=r"^Could not remove beta.md: indexing failed .* beta.md is still in the library; try again.$"):
        library.remove(load(library).store, "beta.md")
    assert indexed(library) == before and removals.read_excluded(library.index_dir) == set()
    assert (corpus / "beta.md").exists()
    # a later plain re-index does not drop it either
    monkeypatch.undo()
    build(None, library.index_dir, embedder=library.embedder)
    assert indexed(library) == before


def test_uploads_with_unicode_line_separators_work_through_the_library(lib, tmp_path):
    library, e = lib
    seps = tmp_path / "seps.txt"
    seps.write_text("Harbor lights\n\nThe harbor lantern festival drew 5,000 visitors to the quay.\u2028Lanterns lined the quay.\u2029"
                    "The harbor ferry ran late.\n", encoding="utf-8")
    cp1252 = tmp_path / "cp1252.txt"  # 0x85 is "…" in Windows-1252 (U+0085, a line break, in latin-1)
    cp1252.write_bytes(b"Glacier notes\r\n\r\nThe glacier lost ice\x85 a record melt at Frostline.\r\n")
    added, problems = library.add([(seps, "seps.txt"), (cp1252, "cp1252.txt")], after=lambda: load(library))
    assert (added, problems) == (["seps.txt", "cp1252.txt"], [])
    a = load(library)
    assert [r.source for r in rows(a.store)] == ["alpha.txt", "beta.md", "cp1252.txt", "seps.txt", "sub/gamma.txt"]
    assert "\u2028Lanterns" in a.store.document("seps.txt").text
    c = a.ask("How many visitors did the harbor lantern festival draw?").citations[0]
    assert c.doc_id == "seps.txt" and a.store.document("seps.txt").text[c.start:c.end] == c.quote
    # a later upload and a removal still work
    ferry = tmp_path / "ferry.txt"
    ferry.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    assert library.add([(ferry, "ferry.txt")], after=lambda: load(library)) == (["ferry.txt"], [])
    assert library.remove(load(library).store, "cp1252.txt", after=lambda: load(library)) == \
        "Removed cp1252.txt. It can be restored under Removed documents."
    assert files(library) == [".removed", "ferry.txt", "seps.txt"]
    assert [d.doc_id for d in Assistant.load(library.index_dir, embedder=e).store.catalog()] == \
        ["alpha.txt", "beta.md", "ferry.txt", "seps.txt", "sub/gamma.txt"]
    build(None, library.index_dir, embedder=e, rebuild=True)
    a = load(library)
    assert [d.doc_id for d in a.store.catalog()] == ["alpha.txt", "beta.md", "ferry.txt", "seps.txt", "sub/gamma.txt"]
    assert "\u2029The harbor ferry ran late." in a.store.document("seps.txt").text


def test_a_removal_a_killed_server_left_half_done_is_finished_on_start(lib, tmp_path):
    library, e = lib
    for name, text in (("kept.txt", "Kept news\n\nThe ferry carries 900 visitors a day.\n"),
                       ("gone.txt", "Gone news\n\nThe harbor parade was cancelled.\n")):
        up = tmp_path / name
        up.write_text(text, encoding="utf-8")
        assert library.add([(up, name)])[0] == [name]
    folder = tmp_path / "library"
    # killed after the build: the index no longer lists gone.txt, whose file was set aside
    os.replace(folder / "gone.txt", folder / ".removing-gone.txt")
    build([tmp_path / "corpus", folder], tmp_path / "idx", embedder=e)
    assert "gone.txt" not in indexed(library) and "kept.txt" in indexed(library)
    # killed before the build: the index still lists kept.txt, whose file was set aside
    os.replace(folder / "kept.txt", folder / ".removing-kept.txt")
    Library(tmp_path / "idx", folder, e)
    assert sorted(p.name for p in folder.iterdir()) == [".removed", "kept.txt"]
    assert [p.name for p in (folder / ".removed").iterdir()] == ["gone.txt"]  # restorable from the page


def test_every_removal_can_be_undone(lib, corpus, tmp_path):
    library, e = lib
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    assert library.add([(up, "ferry.txt")]) == (["ferry.txt"], [])
    assert library.removed() == []
    library.remove(load(library).store, "ferry.txt")
    library.remove(load(library).store, "beta.md")
    assert "ferry.txt" not in indexed(library) and "beta.md" not in indexed(library)
    listed = library.removed()
    assert [r.key for r in listed] == ["library:ferry.txt", f"source:{(corpus / 'beta.md').resolve()}"]
    assert listed[0].label == "Ferry news — ferry.txt"  # the title first, the file name after it
    assert library.restore("library:ferry.txt") == "Restored ferry.txt."
    assert library.restore(listed[1].key) == "Restored beta.md."
    assert library.removed() == [] and removals.read_excluded(library.index_dir) == set()
    a = load(library)
    assert [d.doc_id for d in a.store.catalog()] == ["alpha.txt", "beta.md", "ferry.txt", "sub/gamma.txt"]
    assert a.ask("harbor ferry visitors").citations[0].doc_id == "ferry.txt"
    assert files(library) == [".removed", "ferry.txt"]


def test_restoring_something_not_removed_is_refused(lib):
    library, _ = lib
    for key in ("library:../../etc/passwd", "source:/etc/passwd", "nonsense"):
        with pytest.raises(RagError, match="no longer among the removed ones"):
            library.restore(key)


def test_a_failed_restore_keeps_the_document_removed(lib, tmp_path, monkeypatch):
    library, _ = lib
    up = tmp_path / "up.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    library.add([(up, "ferry.txt")])
    library.remove(load(library).store, "ferry.txt")
    before = indexed(library)
    build_that_fails(monkeypatch, after_writing=True)
    with pytest.raises(UpdateFailed, match=r"^Could not restore ferry.txt: indexing failed .* It is still removed; try again.$"):
        library.restore("library:ferry.txt")
    assert indexed(library) == before and [r.key for r in library.removed()] == ["library:ferry.txt"]
