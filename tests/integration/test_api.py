"""The HTTP JSON API over real HTTP (httpx), against a real uvicorn server in this process.

The server runs over a private copy of the mini corpus with the keyword embedder and the hand-set answer
model of tests/fakes.py, so answers are known in advance and the server starts in about a second (with the
page mounted, as `rag serve` runs it, in about three).
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import MINI

PARADE = "harbor parade visitors"  # the keyword embedder finds the parade article by these words
PARADE_QUOTE = "The harbor parade drew 30,000 visitors on Sunday."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app):
    """``app`` served by uvicorn on a free loopback port, in a thread; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def served(tmp_path):
    """Start a server over a fresh copy of the mini corpus: ``served(page=…, credentials=…)`` -> a dict
    with its url, index, library and corpus folders, and an in-process Assistant over the same index."""
    import shutil

    from fakes import KeywordEmbedder, rule_model
    from rag.pipeline import Assistant, build
    from ui.app import create_server

    corpus = tmp_path / "corpus"
    shutil.copytree(MINI, corpus)
    embedder = KeywordEmbedder()
    build([corpus], tmp_path / "idx", embedder=embedder)
    stack = contextlib.ExitStack()

    def start(page: bool = False, credentials: tuple[str, str] | None = None) -> dict:
        app = create_server(tmp_path / "idx", embedder=embedder, library_dir=tmp_path / "library", model=rule_model(),
                            credentials=credentials, page=page)
        url = stack.enter_context(running(app))
        return {"url": url, "index": tmp_path / "idx", "library": tmp_path / "library", "corpus": corpus,
                "tmp": tmp_path, "embedder": embedder,
                "local": lambda: Assistant.load(tmp_path / "idx", embedder=embedder, model=rule_model())}

    with stack:
        yield start


def source_text(site, source: str, encoding: str) -> str:
    """The text offsets count in: the file decoded without newline translation (README, "JSON")."""
    for folder in (site["corpus"], site["library"]):
        if (folder / source).is_file():
            with open(folder / source, encoding=encoding, newline="") as f:
                return f.read()
    raise AssertionError(f"{source} is in neither folder")


def raw_post(url: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict]:
    """POST with headers as given (httpx refuses a Content-Length that the body does not match): the
    status and JSON of the answer, which must come without the server waiting for the declared body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, "Connection": "close", **headers}.items())
        s.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def untimed(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


def assert_error(r: httpx.Response, status: int, message: str) -> None:
    """One JSON error with exactly ``message``, no traceback."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": message}


# ------------------------------------------------------------------------------------------ ask

def test_ask_returns_the_cli_json_with_quotes_that_are_the_source_slices(served):
    site = served()
    r = httpx.post(site["url"] + "/api/ask", json={"question": PARADE})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    got = r.json()
    assert got["citations"][0]["quote"] == PARADE_QUOTE
    assert got["outcome"] != "refuse" and got["answer"].startswith(PARADE_QUOTE + " [1]")
    for c in got["citations"]:
        assert source_text(site, c["source"], c["encoding"])[c["start"]:c["end"]] == c["quote"]
    for p in got["passages"]:
        assert source_text(site, p["source"], p["encoding"])[p["start"]:p["end"]] == p["text"]
    # The same JSON as `rag ask --json` (Answer.to_dict) from the same index, but for the timings.
    assert untimed(got) == untimed(site["local"]().ask(PARADE).to_dict())
    assert set(got["timings_ms"]) == {"embed", "retrieve", "answer", "total"}


def test_curl_without_a_content_type_and_form_fields_both_work(served):
    site = served()
    expected = untimed(site["local"]().ask(PARADE, k=2).to_dict())
    # What `curl -d '{"question": …}'` sends: JSON labelled as a form.
    as_curl = httpx.post(site["url"] + "/api/ask", content=json.dumps({"question": PARADE, "k": 2}),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert untimed(as_curl.json()) == expected
    form = httpx.post(site["url"] + "/api/ask", data={"question": PARADE, "k": "2"})
    assert untimed(form.json()) == expected
    assert len(expected["passages"]) == 2


def test_history_makes_a_follow_up_search_the_earlier_subject(served):
    site = served()
    body = {"question": "And how many visitors came?", "history": ["When was the harbor parade?"]}
    got = httpx.post(site["url"] + "/api/ask", json=body).json()
    expected = site["local"]().ask(body["question"], history=body["history"]).to_dict()
    assert untimed(got) == untimed(expected)
    assert got["question"] == "And how many visitors came?"


@pytest.mark.parametrize("body, status, message", [
    ({"question": "   "}, 422, 'The question has no words in it: send a question in words, e.g. {"question": "Where is iFlytek based?"}'),
    ({"question": "x" * 2001}, 422, "The question is 2,001 characters long; the limit is 2,000: shorten it."),
    ({"question": "parade", "history": ["y" * 2001]}, 422, "An earlier question in history is over 2,000 characters: shorten it."),
    ({}, 422, "question: required"),
    ({"question": 7}, 422, "question: Input should be a valid string"),
    ({"question": "parade", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"question": "parade", "k": 21}, 422, "k: Input should be less than or equal to 20"),
    ({"question": "parade", "k": True}, 422, "k: Input should be a valid integer"),
    ({"question": "parade", "k": "2"}, 422, "k: Input should be a valid integer"),
    ({"question": "parade", "questions": "typo"}, 422, "questions: Extra inputs are not permitted"),
    (["parade"], 422, 'The body must be a JSON object like {"question": "Where is iFlytek based?"}'),
])
def test_bad_questions_get_one_message_and_a_4xx(served, body, status, message):
    site = served()
    assert_error(httpx.post(site["url"] + "/api/ask", json=body), status, message)
    assert httpx.get(site["url"] + "/api/health").status_code == 200  # still up


def test_malformed_and_oversized_bodies_are_refused_before_the_pipeline(served):
    site = served()
    url = site["url"] + "/api/ask"
    r = httpx.post(url, content=b'{"question": "x', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("The body is not valid JSON (Unterminated string")
    assert_error(httpx.post(url, content=b"[" * 100_000), 400,
                 'The body nests too deeply to read: send an object like {"question": "Where is iFlytek based?"}')
    assert_error(httpx.post(url), 400, 'The request has no body: send a JSON object like {"question": "Where is iFlytek based?"}')
    big = json.dumps({"question": "parade", "history": ["word " * 300] * 200})  # ~300 KB
    assert_error(httpx.post(url, content=big, headers={"Content-Type": "application/json"}), 413,
                 "The request body is over 256 KB: a question is at most 2,000 characters.")
    # Sent in chunks without a Content-Length, it is counted as it arrives.
    chunks = (big[i:i + 65536].encode() for i in range(0, len(big), 65536))
    assert_error(httpx.post(url, content=chunks, headers={"Content-Type": "application/json"}), 413,
                 "The request body is over 256 KB: a question is at most 2,000 characters.")
    assert_error(httpx.get(url), 405, "GET is not allowed on /api/ask: use POST.")
    assert_error(httpx.get(site["url"] + "/api/nothing"), 404, "No API route /api/nothing: the routes are listed at /docs.")


# ------------------------------------------------------------------------------------------ documents

def catalog(site) -> list[str]:
    r = httpx.get(site["url"] + "/api/documents")
    assert r.status_code == 200
    return [d["id"] for d in r.json()["documents"]]


def test_documents_upload_is_listed_answerable_and_removable(served):
    site = served()
    assert catalog(site) == ["alpha.txt", "beta.md", "sub/gamma.txt"]
    first = httpx.get(site["url"] + "/api/documents").json()["documents"][0]
    assert first == {"id": "alpha.txt", "title": "Zephyr Dynamics opens a turbine plant in Lakeview", "date": "2021-03-03",
                     "chars": len(source_text(site, "alpha.txt", "utf-8")),
                     "bytes": (site["corpus"] / "alpha.txt").stat().st_size, "passages": first["passages"]}
    ferry = "Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n"
    r = httpx.post(site["url"] + "/api/documents", files=[("files", ("ferry.txt", ferry.encode(), "text/plain"))])
    assert r.status_code == 201 and r.json() == {"added": ["ferry.txt"], "refused": []}
    assert catalog(site) == ["alpha.txt", "beta.md", "ferry.txt", "sub/gamma.txt"]
    got = httpx.post(site["url"] + "/api/ask", json={"question": "harbor ferry visitors"}).json()
    assert got["citations"][0]["quote"] == "The harbor ferry carries 900 visitors a day."
    c = got["citations"][0]
    assert source_text(site, "ferry.txt", c["encoding"])[c["start"]:c["end"]] == c["quote"]
    r = httpx.delete(site["url"] + "/api/documents/ferry.txt")
    assert r.status_code == 200
    assert r.json() == {"removed": "ferry.txt", "message": "Removed ferry.txt. It can be restored under Removed documents."}
    assert catalog(site) == ["alpha.txt", "beta.md", "sub/gamma.txt"]
    got = httpx.post(site["url"] + "/api/ask", json={"question": "harbor ferry visitors"}).json()
    assert all(c["source"] != "ferry.txt" for c in got["citations"])
    assert_error(httpx.delete(site["url"] + "/api/documents/ferry.txt"), 404,
                 "No document 'ferry.txt' in the library: GET /api/documents lists them.")
    # an id with a folder in it, from another source folder: left out of the index, its file kept
    assert httpx.delete(site["url"] + "/api/documents/sub/gamma.txt").status_code == 200
    assert catalog(site) == ["alpha.txt", "beta.md"] and (site["corpus"] / "sub" / "gamma.txt").exists()


def test_uploads_are_checked_file_by_file_like_the_page(served):
    site = served()
    url = site["url"] + "/api/documents"
    good = ("files", ("ferry.txt", b"Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", "text/plain"))
    page = ("files", ("sheet.xlsx", b"PK\x03\x04 not an article", "application/octet-stream"))
    empty = ("files", ("empty.md", b"", "text/markdown"))
    r = httpx.post(url, files=[good, page, empty])
    assert r.status_code == 201
    assert r.json() == {"added": ["ferry.txt"], "refused": ["sheet.xlsx: only .txt, .md, .html and .pdf files can be added",
                                                            "empty.md: the file is empty"]}
    r = httpx.post(url, files=[good])  # the same text again
    assert r.status_code == 422
    assert r.json()["error"] == "Nothing was added: ferry.txt: same text as ferry.txt, which is already in the library"
    assert_error(httpx.post(url, data={"note": "no file"}), 422,
                 "Send the files as multipart form data: curl -F files=@article.txt …/api/documents")
    assert_error(httpx.post(url, files=[("note", (None, b"text only"))]), 422,
                 "No file in the request: curl -F files=@article.txt …/api/documents")
    assert catalog(site) == ["alpha.txt", "beta.md", "ferry.txt", "sub/gamma.txt"]


def test_an_oversized_upload_is_413_and_nothing_is_kept(served):
    from ui.library import MAX_UPLOAD_BYTES

    site = served()
    big = b"A line of an article that goes on.\n" * (MAX_UPLOAD_BYTES // 35 + 1)
    assert len(big) > MAX_UPLOAD_BYTES
    good = ("files", ("ferry.txt", b"Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", "text/plain"))
    r = httpx.post(site["url"] + "/api/documents", files=[good, ("files", ("big.txt", big, "text/plain"))], timeout=60)
    assert_error(r, 413, "big.txt: 10.0 MB is over the 10 MB limit; nothing was added.")
    assert catalog(site) == ["alpha.txt", "beta.md", "sub/gamma.txt"]
    assert not site["library"].exists() or not any(site["library"].glob("*.txt"))
    # a request over the whole limit is refused from its Content-Length, before it is read
    status, body = raw_post(site["url"], "/api/documents", {"Content-Type": "multipart/form-data; boundary=b",
                                                            "Content-Length": str(300 * 2**20)}, b"--b")
    assert (status, body) == (413, {"error": "The upload is too large: send at most 20 files of 10 MB each per request."})
    assert httpx.get(site["url"] + "/api/health").json()["status"] == "ok"


def test_the_api_follows_an_index_changed_by_another_process(served):
    """The reload rule of the page (Holder.current): `rag index` elsewhere shows up on the next request."""
    from rag.pipeline import build

    site = served()
    (site["corpus"] / "ferry.txt").write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", encoding="utf-8")
    build([site["corpus"]], site["index"], embedder=site["embedder"])
    got = httpx.post(site["url"] + "/api/ask", json={"question": "harbor ferry visitors"}).json()
    assert got["citations"][0]["quote"] == "The harbor ferry carries 900 visitors a day."
    (site["corpus"] / "ferry.txt").unlink()
    build([site["corpus"]], site["index"], embedder=site["embedder"])
    assert "ferry.txt" not in catalog(site)


# ------------------------------------------------------------------------------------------ health, docs

def test_health(served):
    site = served()
    store = site["local"]().store
    assert httpx.get(site["url"] + "/api/health").json() == {
        "status": "ok", "documents": 3, "passages": len(store), "model": "fake/keyword-v1"}


def test_openapi_lists_the_routes_and_docs_work_offline(served):
    site = served()
    schema = httpx.get(site["url"] + "/openapi.json").json()
    routes = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert routes == {("/api/ask", "post"), ("/api/documents", "get"), ("/api/documents", "post"),
                      ("/api/documents/{doc_id}", "delete"), ("/api/health", "get")}
    ask = schema["paths"]["/api/ask"]["post"]
    assert set(ask["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {"question", "history", "k"}
    assert "securitySchemes" not in schema.get("components", {})
    page = httpx.get(site["url"] + "/docs")
    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text  # nothing loaded from a CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/api/docs-assets/{asset}" in page.text
        r = httpx.get(f"{site['url']}/api/docs-assets/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000


# ------------------------------------------------------------------------------------------ auth, modes

def test_auth_is_required_when_set(served):
    site = served(credentials=("ann", "s3cret"))
    url = site["url"]
    for method, path in [("POST", "/api/ask"), ("GET", "/api/documents"), ("POST", "/api/documents"),
                         ("DELETE", "/api/documents/alpha.txt"), ("GET", "/api/health"), ("GET", "/openapi.json"),
                         ("GET", "/docs"), ("GET", "/api/nothing")]:
        for auth in (None, ("ann", "wrong"), ("bob", "s3cret")):
            r = httpx.request(method, url + path, auth=auth, json={"question": PARADE})
            assert_error(r, 401, "This server needs a user name and password: send them with HTTP Basic auth "
                                 "(curl -u user:password).")
            assert r.headers["www-authenticate"].startswith("Basic")
    ok = httpx.post(url + "/api/ask", json={"question": PARADE}, auth=("ann", "s3cret"))
    assert ok.status_code == 200 and ok.json()["citations"][0]["quote"] == PARADE_QUOTE
    schema = httpx.get(url + "/openapi.json", auth=("ann", "s3cret")).json()
    assert schema["security"] == [{"basic": []}]
    # an unauthenticated upload is refused before its body is read, however large it says it is
    status, _ = raw_post(url, "/api/documents", {"Content-Type": "multipart/form-data; boundary=b",
                                                 "Content-Length": str(300 * 2**20)}, b"--b")
    assert status == 401


def test_api_only_has_no_page(served):
    site = served(page=False)
    assert_error(httpx.get(site["url"] + "/"), 404, "This server serves the HTTP API only (rag serve --api-only): see /docs.")
    assert httpx.get(site["url"] + "/api/health").status_code == 200
    assert httpx.post(site["url"] + "/api/ask", json={"question": PARADE}).status_code == 200


def test_with_the_page_both_share_one_library_and_the_gradio_ask_stays(served):
    from gradio_client import Client

    site = served(page=True)
    page = httpx.get(site["url"] + "/")
    assert page.status_code == 200 and "<html" in page.text.lower() and "gradio" in page.text.lower()
    r = httpx.post(site["url"] + "/api/documents",
                   files=[("files", ("ferry.txt", b"Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", "text/plain"))])
    assert r.status_code == 201
    client = Client(site["url"] + "/", verbose=False)
    via_page = client.predict("harbor ferry visitors", api_name="/ask")
    via_api = httpx.post(site["url"] + "/api/ask", json={"question": "harbor ferry visitors"}).json()
    assert via_page["citations"][0]["quote"] == "The harbor ferry carries 900 visitors a day."
    assert untimed(via_page) == untimed(via_api)
    *_, status = client.predict("ferry.txt", api_name="/remove")  # removed through the page
    assert status == "<p>Removed ferry.txt. It can be restored under Removed documents.</p>"
    assert "ferry.txt" not in catalog(site)


# ------------------------------------------------------------------------------------------ load tool

def test_the_load_tool_drives_the_api_and_finds_no_difference(served):
    from evals import load

    site = served()
    r = load.run(site["url"] + "/", clients=4, count=40, target="api")
    assert (r["answered"], r["errors"], r["mismatches"], r["unfinished"]) == (40, 0, 0, 0)
    auth = served(credentials=("ann", "s3cret"))
    r = load.run(auth["url"] + "/", clients=2, count=6, target="api", auth=("ann", "s3cret"), concurrent_first=True)
    assert (r["answered"], r["errors"], r["mismatches"]) == (6, 0, 0)
    with pytest.raises(RuntimeError, match="HTTP 401: .*This server needs a user name and password"):
        load.run(auth["url"] + "/", clients=2, count=4, target="api")  # without the password


def test_with_the_page_and_auth_the_page_and_the_api_are_both_guarded(served):
    site = served(page=True, credentials=("ann", "s3cret"))
    assert httpx.post(site["url"] + "/gradio_api/call/ask", json={"data": [PARADE]}).status_code == 401  # Gradio's login
    assert httpx.get(site["url"] + "/api/health").status_code == 401
    assert httpx.get(site["url"] + "/api/health", auth=("ann", "s3cret")).status_code == 200
