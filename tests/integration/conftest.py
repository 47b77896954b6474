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


@pytest.fixture(scope="session")
def server(tmp_path_factory, seed_index):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(seed_index)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(log.read_text())
            time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError("server did not start: " + log.read_text())
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="session")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)
