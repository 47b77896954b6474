"""The real Gradio server on a free loopback port, driven by gradio_client (and Chromium, below)."""
import os
import subprocess
import sys

import pytest

from conftest import SEEDS


def test_api_ask_returns_the_answer_json(client):
    d = client.predict("Where is iFlytek based?", api_name="/ask")
    assert isinstance(d, dict)
    assert list(d) == ["question", "answer", "abstained", "outcome", "confidence", "citations", "passages", "timings_ms"]
    assert d["outcome"] in ("answer", "possible") and d["abstained"] is False and 0.0 <= d["confidence"] <= 1.0
    c = d["citations"][0]
    assert c["source"] == "000_27760e3598894cce.txt" and "Hefei" in d["answer"]
    assert (SEEDS / c["source"]).read_text(encoding="utf-8")[c["start"]:c["end"]] == c["quote"]


def test_a_bad_request_does_not_take_the_server_down(client):
    with pytest.raises(Exception, match="The question has no words"):
        client.predict("   ", api_name="/ask")
    assert client.predict("Who won the 2018 FIFA World Cup?", api_name="/ask")["abstained"] is True


def test_serve_refuses_a_public_bind_without_auth(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAG_AUTH"}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "serve", "--host", "0.0.0.0", "--index-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("rag: Refusing to serve on 0.0.0.0 without authentication")


def test_upload_is_cited_and_removal_makes_it_disappear(tmp_path, seed_index, launch):
    import shutil

    from gradio_client import Client, handle_file

    index = tmp_path / "index"
    shutil.copytree(seed_index, index)  # this test changes its index; the shared one stays as it is
    article = tmp_path / "wuhu robots.txt"
    article.write_text("Wuhu robot makers\nJune 1, 2024\n\nThe Wuhu robot park hosts 200 robot makers, said manager "
                       "Ada Lovelock. Efort Intelligent Equipment is the largest of them.\n", encoding="utf-8")
    question = "How many robot makers does the Wuhu robot park host?"
    with launch(index, tmp_path) as url:
        c = Client(url, verbose=False)
        table, *_, status = c.predict([handle_file(str(article))], api_name="/upload")
        assert status == "<p>Added wuhu_robots.txt.</p>"
        assert '<div class="rag-lib-title">Wuhu robot makers</div><div class="rag-meta">wuhu_robots.txt · 2024-06-01' in table
        assert (tmp_path / "library" / "wuhu_robots.txt").is_file()  # kept beside the index, never elsewhere
        # what the index would not hold is refused, and nothing of it is left in the library
        blank = tmp_path / "blank.txt"
        blank.write_text(" \n\n", encoding="utf-8")
        copy = tmp_path / "000_000.txt"  # sorts before the seed it copies
        copy.write_bytes((SEEDS / "000_27760e3598894cce.txt").read_bytes())
        table, *_, status = c.predict([handle_file(str(blank)), handle_file(str(copy))], api_name="/upload")
        assert status == ("<p>Nothing was added.</p><p>blank.txt: the file has no text in it, only blank space</p>"
                          "<p>000_000.txt: same text as 000_27760e3598894cce.txt, which is already in the library</p>")
        assert sorted(p.name for p in (tmp_path / "library").iterdir()) == ["wuhu_robots.txt"]
        assert '<div class="rag-meta">000_27760e3598894cce.txt · ' in table
        d = c.predict(question, api_name="/ask")
        assert d["citations"][0]["source"] == "wuhu_robots.txt" and "200 robot makers" in d["answer"]
        *_, status = c.predict("wuhu_robots.txt", api_name="/remove")
        assert status == "<p>Removed wuhu_robots.txt. It can be restored under Removed documents.</p>"
        d = c.predict(question, api_name="/ask")
        assert all(p["source"] != "wuhu_robots.txt" for p in d["passages"])
        assert all(x["source"] != "wuhu_robots.txt" for x in d["citations"])
        bad = tmp_path / "photo.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        *_, status = c.predict([handle_file(str(bad))], api_name="/upload")  # refused by type; the server stays up
        assert status == "<p>Nothing was added.</p><p>photo.png: only .txt, .md, .html and .pdf files can be added</p>"
        assert c.predict(question, api_name="/ask")["passages"]
    assert sorted(p.name for p in (tmp_path / "library").iterdir()) == [".removed"]
    assert [p.name for p in (tmp_path / "library" / ".removed").iterdir()] == ["wuhu_robots.txt"]  # restorable


def test_concurrent_clients_get_the_sequential_answers(server):
    from evals.load import run

    result = run(server, clients=8, count=24, time_limit=300)
    assert (result["answered"], result["errors"], result["mismatches"], result["unfinished"]) == (24, 0, 0, 0)
    assert result["p95_ms"] >= result["p50_ms"] > 0


def test_load_script_refuses_other_hosts():
    from evals.load import run

    with pytest.raises(ValueError, match="loopback only"):
        run("http://10.0.0.1:7860/", clients=1, count=1)
