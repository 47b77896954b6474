"""Citation offsets of CRLF, BOM, mixed-newline and Windows-1252 files, end to end through `rag ask --json`:
``open(path, encoding=citation["encoding"], newline="").read()[start:end] == quote``."""
import json
import os
import subprocess
import sys

import pytest

FILES = {
    # a hard-wrapped sentence with Windows line ends
    "crlf.txt": ("Harbor report\r\n\r\nThe Karsvik lighthouse, which was\r\nbuilt in 1868, guides ships into the fjord.\r\n"
                 "Its lamp runs on solar panels.\r\n").encode("utf-8"),
    "bom.txt": "\ufeffMountain news\r\n\r\nThe Orvane cable car climbs 1,200 metres to the top of Mount Tessel.\r\n".encode("utf-8"),
    "mixed.txt": b"Bakery notes\n\r\nThe Pellham bakery bakes rye bread every Tuesday.\rIt opened in 1952.\r\nIts oven burns beech wood.\n",
    "cp1252.txt": "Museum notes\r\n\r\nThe Vantor museum shows 300 clocks\u2026 and one sundial.\r\n".encode("cp1252"),
}
QUESTIONS = [
    ("When was the Karsvik lighthouse built?", "crlf.txt", "utf-8",
     "The Karsvik lighthouse, which was\r\nbuilt in 1868, guides ships into the fjord."),
    ("How high does the Orvane cable car climb?", "bom.txt", "utf-8-sig",
     "The Orvane cable car climbs 1,200 metres to the top of Mount Tessel."),
    ("Which bread does the Pellham bakery bake?", "mixed.txt", "utf-8", "The Pellham bakery bakes rye bread every Tuesday."),
    ("How many clocks does the Vantor museum show?", "cp1252.txt", "cp1252", "The Vantor museum shows 300 clocks\u2026 and one sundial."),
]


@pytest.fixture(scope="module")
def odd_index(tmp_path_factory, real_embedder):
    from rag.pipeline import build

    root = tmp_path_factory.mktemp("odd")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, data in FILES.items():
        (corpus / name).write_bytes(data)
    build([corpus], root / "idx", embedder=real_embedder)
    return corpus, root / "idx"


@pytest.mark.parametrize("question, source, encoding, quote", QUESTIONS, ids=[q[1] for q in QUESTIONS])
def test_offsets_index_the_file_read_without_newline_translation(odd_index, question, source, encoding, quote):
    corpus, idx = odd_index
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", question, "--json", "--index-dir", str(idx)],
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    first = answer["citations"][0]
    assert (first["source"], first["encoding"], first["quote"]) == (source, encoding, quote)
    for c in answer["citations"]:
        with open(corpus / c["source"], encoding=c["encoding"], newline="") as f:
            assert f.read()[c["start"]:c["end"]] == c["quote"]
    for p in answer["passages"]:
        with open(corpus / p["source"], encoding=p["encoding"], newline="") as f:
            assert f.read()[p["start"]:p["end"]] == p["text"]
