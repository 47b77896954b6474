"""The real model and FAISS on the five seed articles."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SEEDS

QUESTIONS = Path(__file__).parents[2] / "evals" / "questions.jsonl"


def seed_text(name):
    return (SEEDS / name).read_text(encoding="utf-8")


def test_iflytek_is_based_in_hefei(seed_assistant):
    a = seed_assistant.ask("Where is iFlytek based?")
    assert not a.abstained
    assert a.citations[0].doc_id == "000_27760e3598894cce.txt"
    assert "Hefei" in a.citations[0].quote and "Hefei" in a.text
    c = a.citations[0]
    assert seed_text(c.doc_id)[c.start:c.end] == c.quote
    assert (c.title, c.date) == ("BEIJING – Innovation: Anhui bets big on industries of the future", "2023-07-04")


@pytest.mark.parametrize("q", ["Who won the 2018 FIFA World Cup?", "What is the recipe for chocolate cake?",
                               "How tall is Mount Everest?"])
def test_off_topic_questions_abstain(seed_assistant, q):
    a = seed_assistant.ask(q)
    assert a.abstained and a.citations == () and len(a.hits) == 5


def test_numbers_are_told_apart(seed_assistant):
    a = seed_assistant.ask("What was the average annual growth rate of Anhui's strategic emerging industries over the past five years?")
    assert a.citations[0].doc_id == "004_9c7007180fbb4f3d.txt" and "18.2%" in a.citations[0].quote
    b = seed_assistant.ask("By what average annual rate did the output value of Hefei's strategic emerging industries grow over the past decade?")
    assert b.citations[0].doc_id == "001_170ac16a23be116d.txt" and "17.1 percent" in b.citations[0].quote


def test_snippet_story_is_answerable_and_not_mixed(seed_assistant):
    a = seed_assistant.ask("Where did the Shenzhou-15 return capsule land?")
    assert "Dongfeng landing site" in a.citations[0].quote
    for h in a.hits:
        assert not ("Shenzhou" in h.chunk.text and "naval" in h.chunk.text)


def test_every_citation_of_the_question_set_is_exact(seed_assistant):
    questions = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(questions) >= 80
    cited = 0
    for q in questions:
        a = seed_assistant.ask(q["question"])
        assert a.abstained == (a.text == "")
        for c in a.citations:
            assert seed_text(c.doc_id)[c.start:c.end] == c.quote
            assert f"{c.quote} [{c.n}]" in a.text
            cited += 1
        assert len(a.text) <= 400 or len(a.citations) == 1
    assert cited >= 60


def test_boilerplate_is_never_cited(seed_assistant):
    for q in ["Copyright www.gov.cn Website Identification Code", "Leave a Comment", "Photo: Chen Tao/GT",
              "Mobile Desktop App", "video reporters Xie Yuan"]:
        for c in seed_assistant.ask(q).citations:
            for bad in ("Copyright", "Identification Code", "Photo:", "Leave a Comment", "Video reporters"):
                assert bad not in c.quote


def rag(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_cli_index_then_ask_json(tmp_path, no_network):
    idx = tmp_path / "idx"
    first = rag("index", str(SEEDS), "--index-dir", str(idx), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Indexed 5 documents" in first.stdout
    again = rag("index", str(SEEDS), "--index-dir", str(idx), cwd=tmp_path)
    assert "is up to date: 5 documents" in again.stdout
    out = rag("ask", "Where is iFlytek based?", "--json", cwd=tmp_path, env={"RAG_INDEX_DIR": str(idx)})
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["citations"][0]["source"] == "000_27760e3598894cce.txt" and "Hefei" in d["answer"]
    human = rag("ask", "Where is iFlytek based?", "--index-dir", str(idx), cwd=tmp_path)
    assert human.stdout.splitlines()[-1].startswith('[1] 000_27760e3598894cce.txt — "')
    docs = rag("docs", "--index-dir", str(idx), "--json", cwd=tmp_path)
    assert [json.loads(l)["source"] for l in docs.stdout.splitlines()] == sorted(p.name for p in SEEDS.glob("*.txt"))


def test_onnx_embedder_matches_sentence_transformers(real_embedder, tmp_path):
    from rag.embed import OnnxEmbedder, ensure_onnx, model_fingerprint
    from rag.ingest import ingest

    path = ensure_onnx(tmp_path)
    assert path == str(tmp_path / "models" / model_fingerprint() / "model.onnx")
    assert Path(path).stat().st_size > 50_000_000
    onnx = OnnxEmbedder(path, batch_size=7, threads=os.cpu_count())  # odd batches: sorted, padded, put back
    texts = [d.text[b.start:b.end] for d in ingest([SEEDS]).documents for b in d.blocks][:60] + ["x " * 600, "Hefei"]
    cos = (onnx.embed_documents(texts) * real_embedder.embed_documents(texts)).sum(axis=1)
    assert cos.min() > 0.9999
    assert float(onnx.embed_query(texts[3]) @ real_embedder.embed_query(texts[3])) > 0.9999


def test_index_exports_onnx_once_into_the_cache_and_queries_use_it(tmp_path, monkeypatch, no_network):
    from rag.embed import OnnxEmbedder, model_fingerprint
    from rag.store.generations import read_manifest
    from rag.pipeline import Assistant, build

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    export = tmp_path / "cache" / "models" / model_fingerprint() / "model.onnx"
    build([SEEDS], tmp_path / "idx")
    assert export.is_file() and not (tmp_path / "idx" / "models").exists()
    made = export.stat().st_mtime_ns
    build([SEEDS], tmp_path / "idx2")
    assert export.stat().st_mtime_ns == made and os.listdir(tmp_path / "cache" / "models") == [model_fingerprint()]
    assert read_manifest(tmp_path / "idx")[1]["model"]["fingerprint"] == model_fingerprint()
    a = Assistant.load(tmp_path / "idx")
    assert isinstance(a.embedder, OnnxEmbedder) and a.embedder.onnx_path == str(export)
    assert a.ask("Where is iFlytek based?").citations[0].doc_id == "000_27760e3598894cce.txt"
