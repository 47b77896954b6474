import numpy as np
import pytest

from fakes import KeywordEmbedder
from rag import index as storage
from rag.config import Settings
from rag.pipeline import build
from rag.retrieve import BM25Retriever, DenseRetriever, HybridRetriever, fuse


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory):
    from conftest import MINI

    embedder = KeywordEmbedder()
    d = tmp_path_factory.mktemp("mini") / "idx"
    build([MINI], d, embedder=embedder)
    return storage.load(d), embedder


def starts(hits):
    return [(h.chunk.doc_id, h.chunk.start) for h in hits]


def test_dense_ranking_is_exact(mini_index):
    index, emb = mini_index
    hits = DenseRetriever(index, emb).retrieve("glacier ice melt", 3)
    # query = (glacier + ice + melt)/√3; each passage is embedded with the title "Glacier station records
    # record melt" before it. Chunk@166: glacier 2, melt 1, ice 1 -> 4/(√3·√6) = 0.9428.
    # Chunk@53: glacier 3, melt 2, ice 2, frostline 2 -> 7/(√3·√21) = 0.8819. Every other chunk: 0.
    assert starts(hits[:2]) == [("sub/gamma.txt", 166), ("sub/gamma.txt", 53)]
    assert [round(h.score, 4) for h in hits] == [0.9428, 0.8819, 0.0]
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].dense_rank == 1 and hits[0].bm25_rank is None


def test_bm25_ranking_is_exact(mini_index):
    index, _ = mini_index
    hits = BM25Retriever(index).retrieve("sourdough ovens Naples", 5)
    # only the two beta.md chunks contain any of the terms; "oven"+"napl" (2 terms) beat "sourdough" (1)
    assert starts(hits) == [("beta.md", 154), ("beta.md", 48)]


def test_bm25_unknown_words_give_nothing(mini_index):
    index, _ = mini_index
    assert BM25Retriever(index).retrieve("quidditch", 5) == []


def test_rrf_arithmetic():
    dense = [(10, 0.9), (20, 0.8), (30, 0.1)]
    sparse = [(20, 7.0), (40, 3.0)]
    fused = fuse(dense, sparse, Settings(fusion="rrf", rrf_k=60))
    # 20: 1/62 + 1/61 = 0.032521; 10: 1/61 = 0.016393; 40: 1/62 = 0.016129; 30: 1/63 = 0.015873
    assert [r for r, _ in fused] == [20, 10, 40, 30]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_score_fusion_arithmetic():
    dense = [(10, 0.9), (20, 0.5), (30, 0.1)]
    sparse = [(20, 8.0), (40, 2.0)]
    fused = dict(fuse(dense, sparse, Settings(fusion="score", dense_weight=0.5)))
    # dense min-max: 10→1, 20→0.5, 30→0; sparse: 20→1, 40→0; weights 0.5 each
    assert fused == pytest.approx({10: 0.5, 20: 0.75, 30: 0.0, 40: 0.0})


@pytest.mark.parametrize("n, k", [(1, 5), (17, 5), (33, 40), (200, 7)])
def test_faiss_matches_brute_force(tmp_path, n, k):
    import faiss

    rng = np.random.default_rng(n)
    vecs = rng.standard_normal((n, 24)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    q = rng.standard_normal(24).astype(np.float32)
    q /= np.linalg.norm(q)
    idx = faiss.IndexFlatIP(24)
    idx.add(vecs)
    scores, rows = idx.search(q[None], min(k, n))
    brute = np.argsort(-(vecs @ q), kind="stable")[: min(k, n)]
    assert rows[0].tolist() == brute.tolist()
    assert np.allclose(scores[0], (vecs @ q)[brute], atol=1e-5)


class RetrieverContract:
    """Every Retriever: at most k hits, ranks 1..n, no passage twice, scores not increasing."""

    def make(self, index, embedder):
        raise NotImplementedError

    @pytest.mark.parametrize("k", [1, 3, 50])
    def test_contract(self, mini_index, k):
        index, emb = mini_index
        hits = self.make(index, emb).retrieve("harbor parade visitors glacier", k)
        assert 1 <= len(hits) <= min(k, len(index))
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert len({h.chunk.chunk_id for h in hits}) == len(hits)
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
        for h in hits:
            doc = index.document(h.chunk.doc_id)
            assert doc.text[h.chunk.start:h.chunk.end] == h.chunk.text


class TestDense(RetrieverContract):
    def make(self, index, embedder):
        return DenseRetriever(index, embedder)


class TestBM25(RetrieverContract):
    def make(self, index, embedder):
        return BM25Retriever(index)


class TestHybrid(RetrieverContract):
    def make(self, index, embedder):
        return HybridRetriever(index, embedder)


class TestHybridScoreFusion(RetrieverContract):
    def make(self, index, embedder):
        return HybridRetriever(index, embedder, Settings(fusion="score"))


def test_hybrid_reports_each_retrievers_rank(mini_index):
    index, emb = mini_index
    hits = HybridRetriever(index, emb, Settings(fusion="rrf", rrf_k=60)).retrieve("harbor parade", 4)
    assert (hits[0].chunk.doc_id, hits[0].dense_rank, hits[0].bm25_rank) == ("sub/gamma.txt", 1, 1)
    # BM25 finds the parade chunk and both beta.md chunks ("Harbor City" in the text or title);
    # the fourth passage comes from dense search alone
    assert starts(hits[:3]) == [("sub/gamma.txt", 360), ("beta.md", 48), ("beta.md", 154)]
    assert [h.bm25_rank for h in hits] == [1, 2, 3, None]
    # rrf_k=60: ranks (1,1) -> 2/61 = 0.032787
    assert hits[0].score == pytest.approx(2 / 61)


def test_default_score_fusion_puts_the_double_winner_at_one(mini_index):
    index, emb = mini_index
    hits = HybridRetriever(index, emb).retrieve("harbor parade", 2)
    # top of both lists -> min-max 1.0 on each side: 0.3 * 1 + 0.7 * 1 = 1.0
    assert hits[0].chunk.start == 360 and hits[0].score == pytest.approx(1.0)
