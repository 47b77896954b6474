"""The real Gradio server on a free loopback port, driven by gradio_client (and Chromium, below)."""
import os
import subprocess
import sys

import pytest

from conftest import SEEDS


def test_api_ask_returns_the_answer_json(client):
    d = client.predict("Where is iFlytek based?", api_name="/ask")
    assert isinstance(d, dict)
    assert list(d) == ["question", "answer", "abstained", "citations", "passages", "timings_ms"]
    c = d["citations"][0]
    assert c["source"] == "000_27760e3598894cce.txt" and "Hefei" in d["answer"]
    assert (SEEDS / c["source"]).read_text(encoding="utf-8")[c["start"]:c["end"]] == c["quote"]


def test_a_bad_request_does_not_take_the_server_down(client):
    with pytest.raises(Exception, match="The question is empty"):
        client.predict("   ", api_name="/ask")
    assert client.predict("Who won the 2018 FIFA World Cup?", api_name="/ask")["abstained"] is True


def test_serve_refuses_a_public_bind_without_auth(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAG_AUTH"}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "serve", "--host", "0.0.0.0", "--index-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("rag: Refusing to serve on 0.0.0.0 without authentication")
