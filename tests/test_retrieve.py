import numpy as np
import pytest

from fakes import KeywordEmbedder
from rag.store import generations as storage
from rag.store.local import LocalStore
from rag.config import Settings
from rag.pipeline import build
from rag.retrieve import BM25Retriever, DenseRetriever, HybridRetriever, fuse


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory):
    from conftest import MINI

    embedder = KeywordEmbedder()
    d = tmp_path_factory.mktemp("mini") / "idx"
    build([MINI], d, embedder=embedder)
    return LocalStore(storage.load(d)), embedder


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


@pytest.mark.parametrize("n, k", [(1, 5), (17, 5), (33, 40), (201, 7), (57, 57)])
def test_dense_search_is_exact_for_any_corpus_and_k(tmp_path, n, k):
    """Through the project's index (build, make_vector_index, write, load) and DenseRetriever: the top
    min(k, n) passages by inner product, in order, with their scores, also when k exceeds the corpus."""
    from fakes import HashEmbedder

    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(n):
        (corpus / f"d{i:03d}.txt").write_text(f"Report {i}\n\nThe survey counted {i} herons near the pier.\n")
    emb = HashEmbedder(dim=24)
    build([corpus], tmp_path / "idx", embedder=emb)
    index = LocalStore(storage.load(tmp_path / "idx"))
    assert len(index) == n and index.manifest()["faiss_index"] == "IndexFlatIP"
    q = np.random.default_rng(n).standard_normal(24).astype(np.float32)
    q /= np.linalg.norm(q)
    exact = np.asarray(index.index.chunk_vectors) @ q
    best = np.argsort(-exact, kind="stable")[:min(k, n)]
    got = DenseRetriever(index, emb).ranked(q, k)
    assert [r for r, _ in got] == best.tolist()
    assert np.allclose([s for _, s in got], exact[best], atol=1e-5)
    hits = DenseRetriever(index, emb).retrieve("herons near the pier", k)
    assert len(hits) == min(k, n) and [h.dense_rank for h in hits] == list(range(1, min(k, n) + 1))


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


def test_default_score_fusion_weighs_dense_and_bm25_equally(mini_index):
    index, emb = mini_index
    hits = HybridRetriever(index, emb).retrieve("harbor parade", 4)
    # Settings(): score fusion, 0.5 · min-max(dense) + 0.5 · min-max(BM25).
    # dense (query harbor + parade): gamma@360 4/√18 = 0.9428, beta@48 2/√26 = 0.3922, beta@154 1/√18 = 0.2357,
    #   the other four 0 -> normalised 1, 0.4160, 0.25, 0
    # BM25: only gamma@360 (1.5670), beta@48 (0.4911) and beta@154 (0.3674) hold a term -> 1, 0.1031, 0
    # fused: 0.5·1 + 0.5·1 = 1.0; 0.5·0.4160 + 0.5·0.1031 = 0.2596; 0.5·0.25 + 0.5·0 = 0.125; then a dense-only 0.5·0 = 0
    assert starts(hits[:3]) == [("sub/gamma.txt", 360), ("beta.md", 48), ("beta.md", 154)]
    assert [round(h.score, 4) for h in hits] == [1.0, 0.2596, 0.125, 0.0]
    assert [(h.dense_rank, h.bm25_rank) for h in hits] == [(1, 1), (2, 2), (3, 3), (4, None)]


def test_the_assistant_takes_any_retriever_and_answerer_through_their_protocols(tmp_path, corpus):
    from rag.pipeline import Assistant, build
    from rag.types import Answer

    e = KeywordEmbedder()
    build([corpus], tmp_path / "idx", embedder=e)
    seen = []

    class OnlyBM25(BM25Retriever):
        def search(self, query, query_vector, k):
            seen.append(("search", query, k))
            return super().search(query, query_vector, k)

    class Echo:
        def answer(self, question, hits, query_vector=None):
            seen.append(("answer", [h.chunk.doc_id for h in hits]))
            return Answer(question=question, text=hits[0].chunk.text, abstained=False)

    base = Assistant.load(tmp_path / "idx", embedder=e)
    a = Assistant(base.store, e, retriever=OnlyBM25(base.store), answerer=Echo())
    got = a.ask("sourdough ovens", k=2)
    assert seen[0][0] == "search" and seen[1][0] == "answer" and got.text == got.hits[0].chunk.text
    assert got.hits == tuple(BM25Retriever(base.store).retrieve("sourdough ovens", 5)[:2])
