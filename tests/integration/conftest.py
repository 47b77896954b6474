import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import SEEDS


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def no_network():
    """Loading the model and answering must not open a connection beyond loopback."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")) and self.family != socket.AF_UNIX:
            raise AssertionError(f"network access to {address}")
        return real(self, address)

    socket.socket.connect = guarded
    yield
    socket.socket.connect = real


@pytest.fixture(scope="session")
def real_embedder(no_network):
    from rag.embed import SentenceTransformerEmbedder

    e = SentenceTransformerEmbedder()
    e.warm_up()
    return e


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, real_embedder):
    from rag.pipeline import build

    d = tmp_path_factory.mktemp("seeds") / "idx"
    build([SEEDS], d, embedder=real_embedder)
    return d


@pytest.fixture(scope="session")
def seed_assistant(seed_index, real_embedder):
    from rag.pipeline import Assistant

    return Assistant.load(seed_index, embedder=real_embedder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(index_dir, workdir, *extra: str):
    """`rag serve` in a subprocess on a free loopback port (``extra``: more of its arguments); yields
    its URL, stops it afterwards."""
    port = free_port()
    log = workdir / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(index_dir), *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("server did not start: " + log.read_text()) from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory, seed_index):
    with running_server(seed_index, tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.fixture(scope="session")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.fixture(scope="session")
def launch():
    """``running_server`` for tests that need a server of their own (with an index they change)."""
    return running_server
