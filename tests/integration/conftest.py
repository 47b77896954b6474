import socket

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
