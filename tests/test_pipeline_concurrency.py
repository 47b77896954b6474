"""Assistant.embed_query's cache under the chat page's concurrent requests."""
import sys
import threading

import numpy as np

from fakes import KeywordEmbedder
from rag.pipeline import Assistant


def test_a_request_arriving_mid_eviction_does_not_break_either(mini_assistant):
    """Forces the interleaving the chat page can hit: request B runs while request A is evicting,
    between reading the oldest key and removing it. B runs as far as it can: to its end when the
    cache has no lock, or until it waits for the lock (then A finishes first)."""
    embedder = KeywordEmbedder()
    a = Assistant(mini_assistant.store, embedder, mini_assistant.settings, query_cache=1)
    b_stopped = threading.Event()  # B finished, or is waiting for the cache's lock
    errors = []

    def request_b():
        try:
            a.embed_query("glacier melt")
        except Exception as e:  # noqa: BLE001 - any error is the failure being tested
            errors.append(repr(e))
        finally:
            b_stopped.set()

    b = threading.Thread(target=request_b)

    class CacheThatLetsBRunMidEviction(dict):
        armed = True

        def __iter__(self):
            keys = super().__iter__()
            if not self.armed or threading.current_thread() is b:
                return keys
            self.armed = False
            oldest = next(keys)
            b.start()
            b_stopped.wait(timeout=60)  # a guard against hanging, never reached
            return iter([oldest])

    class LockThatTellsWhenBWaits:
        def __init__(self, lock):
            self.lock = lock

        def __enter__(self):
            if threading.current_thread() is b:
                b_stopped.set()
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    a._vectors = CacheThatLetsBRunMidEviction({"harbor parade": embedder.embed_query("harbor parade")})
    a._vectors_lock = LockThatTellsWhenBWaits(getattr(a, "_vectors_lock", threading.Lock()))
    try:
        vector = a.embed_query("turbine plant")
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))
        vector = None
    b.join(timeout=60)
    assert errors == []
    assert np.array_equal(vector, embedder.embed_query("turbine plant"))
    assert list(a._vectors) == ["glacier melt"]


class YieldingEmbedder(KeywordEmbedder):
    """Encodes like KeywordEmbedder, handing the GIL to other threads first, as a real model does."""

    def embed_query(self, text):
        threading.Event().wait(0)  # releases the GIL
        return super().embed_query(text)


def test_many_concurrent_queries_through_a_tiny_cache(mini_assistant):
    """The unforced version: 8 threads x 200 distinct queries, evicting on nearly every query.
    Without the lock this fails in about a third of runs; the test above fails every time."""
    embedder = YieldingEmbedder()
    assistant = Assistant(mini_assistant.store, embedder, mini_assistant.settings, query_cache=2)
    errors, results = [], {}
    start = threading.Barrier(8)

    def ask_many(t):
        start.wait()
        try:
            for i in range(200):
                query = f"harbor parade {t} {i}"
                results[query] = assistant.embed_query(query)
        except Exception as e:  # noqa: BLE001 - any error is the failure being tested
            errors.append(repr(e))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to widen the race
    try:
        threads = [threading.Thread(target=ask_many, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(results) == 1600 and len(assistant._vectors) == 2
    expected = embedder.embed_query("harbor parade")
    assert all(np.array_equal(v, expected) for v in results.values())
