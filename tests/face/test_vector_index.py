"""FaceIndex: exact search, immediate removal, HNSW recall on face-like data, tombstone compaction."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from services.face.vector_index import DuplicateIdError, FaceIndex, IndexSettings

DIM = 128


def unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def clustered(size: int, rng: np.random.Generator, per_identity: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Face-like data: identity centres plus noise (cosine to centre ~0.7); returns data and centres."""
    centres = unit(rng.standard_normal((size // per_identity, DIM)))
    labels = rng.integers(0, len(centres), size)
    return unit(centres[labels] + unit(rng.standard_normal((size, DIM)))), centres


def queries_near(centres: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    labels = rng.integers(0, len(centres), count)
    return unit(centres[labels] + unit(rng.standard_normal((count, DIM))))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def hnsw_settings(**overrides: float) -> IndexSettings:
    return IndexSettings(approximate_threshold=100, **overrides)  # type: ignore[arg-type]


def test_exact_search_matches_numpy(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((2000, DIM)))
    ids = rng.permutation(np.unique(rng.integers(0, 2**62, 2100)))[:2000]
    index = FaceIndex(DIM)
    index.add(ids, vectors)
    queries = unit(rng.standard_normal((20, DIM)))
    scores, found = index.search(queries, 10)
    assert index.kind == "flat" and index.size == 2000
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    np.testing.assert_array_equal(found, ids[expected])
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, expected, axis=1), atol=1e-5)


def test_vectors_are_normalised_and_k_is_capped(rng: np.random.Generator) -> None:
    index = FaceIndex(DIM)
    vectors = rng.standard_normal((3, DIM)) * 7
    index.add([10, 20, 30], vectors)
    scores, found = index.search(vectors[:1], 100)
    assert found.shape == (1, 3) and found[0, 0] == 10
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_empty_index_returns_empty_rows() -> None:
    scores, found = FaceIndex(DIM).search(np.ones(DIM), 5)
    assert scores.shape == found.shape == (1, 0)


def test_removal_is_immediate_in_exact_index(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((500, DIM)))
    index = FaceIndex(DIM)
    index.add(np.arange(500), vectors)
    assert index.remove([7, 8, 9999]) == 2
    _, found = index.search(vectors[[7, 8]], 5)
    assert not np.isin(found, [7, 8]).any()
    assert index.size == 498 and not index.contains(7) and index.contains(6)


def test_invalid_input(rng: np.random.Generator) -> None:
    index = FaceIndex(DIM)
    index.add([1], unit(rng.standard_normal((1, DIM))))
    with pytest.raises(DuplicateIdError):
        index.add([1], unit(rng.standard_normal((1, DIM))))
    with pytest.raises(DuplicateIdError):
        index.add([2, 2], unit(rng.standard_normal((2, DIM))))
    with pytest.raises(ValueError):
        index.add([3], np.ones((1, 64)))
    with pytest.raises(ValueError):
        index.add([3, 4], np.ones((1, DIM)))
    with pytest.raises(ValueError):
        index.search(np.ones(DIM), 0)


def test_approximate_index_recall_on_clustered_data(rng: np.random.Generator) -> None:
    vectors, centres = clustered(8000, rng)
    index = FaceIndex(DIM, IndexSettings(approximate_threshold=1000))
    index.build_from(np.arange(len(vectors)), vectors)
    assert index.kind == "hnsw"
    queries = queries_near(centres, 400, rng)
    _, found = index.search(queries, 1)
    truth = np.argmax(queries @ vectors.T, axis=1)
    assert np.mean(found[:, 0] == truth) >= 0.95
    index.set_ef_search(1)  # the knob reaches the live graph: a greedy search finds less
    _, greedy = index.search(queries, 1)
    assert np.mean(greedy[:, 0] == truth) < np.mean(found[:, 0] == truth)


def test_growing_past_the_threshold_switches_to_hnsw(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((300, DIM)))
    index = FaceIndex(DIM, hnsw_settings())
    index.add(np.arange(80), vectors[:80])
    kind_before = index.kind
    index.add(np.arange(80, 300), vectors[80:])
    assert (kind_before, index.kind, index.size) == ("flat", "hnsw", 300)
    _, found = index.search(vectors[:50], 1)
    assert np.mean(found[:, 0] == np.arange(50)) >= 0.95


def test_removal_in_hnsw_is_immediate_and_compacts(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((1000, DIM)))
    index = FaceIndex(DIM, hnsw_settings(tombstone_fraction=0.2))
    index.build_from(np.arange(1000), vectors)
    assert index.remove(np.arange(100)) == 100
    assert index.tombstones == 100 and index.size == 900
    _, found = index.search(vectors[:100], 20)
    assert found.shape == (100, 20) and not np.isin(found, np.arange(100)).any()
    assert index.remove(np.arange(100)) == 0  # already gone

    index.remove(np.arange(100, 250))  # 250 dead of 1000 stored > 20%: rebuilt from the living
    assert index.tombstones == 0 and index.size == 750 and index.kind == "hnsw"
    _, found = index.search(vectors[:300], 10)
    assert not np.isin(found, np.arange(250)).any()
    _, found = index.search(vectors[250:300], 1)
    assert np.mean(found[:, 0] == np.arange(250, 300)) >= 0.95


def test_compaction_returns_to_exact_when_small(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((200, DIM)))
    index = FaceIndex(DIM, hnsw_settings())
    index.build_from(np.arange(200), vectors)
    index.remove(np.arange(150))
    assert index.kind == "flat" and index.size == 50 and index.tombstones == 0


def test_readding_a_removed_id_uses_the_new_vector(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((400, DIM)))
    index = FaceIndex(DIM, hnsw_settings())
    index.build_from(np.arange(400), vectors)
    index.remove([5])
    replacement = unit(rng.standard_normal((1, DIM)))
    index.add([5], replacement)
    scores, found = index.search(replacement, 1)
    assert found[0, 0] == 5 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    old_scores, old_found = index.search(vectors[5:6], 3)
    assert index.size == 400
    assert not ((old_found == 5) & (old_scores > 0.99)).any()  # the dead copy is gone


def test_concurrent_use(rng: np.random.Generator) -> None:
    index = FaceIndex(DIM, hnsw_settings())
    vectors = unit(rng.standard_normal((800, DIM)))
    errors: list[BaseException] = []

    def writer(start: int) -> None:
        try:
            for offset in range(0, 200, 20):
                ids = np.arange(start + offset, start + offset + 20)
                index.add(ids, vectors[ids])
                index.remove(ids[:5])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                index.search(vectors[:4], 5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (0, 200, 400, 600)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert index.size == 800 - 4 * 50


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_uses_one_openmp_thread_in_any_calling_thread(
    kind: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenMP's thread count belongs to each thread: a pool thread starts at every core whatever the main
    thread set, and a one-vector search spread over cores only waits on them. The search pins itself to
    `search_threads` and leaves the caller's setting as it was."""
    vectors, _ = clustered(600, rng)
    index = FaceIndex(DIM, IndexSettings(approximate_threshold=500 if kind == "hnsw" else 10_000))
    index.build_from(np.arange(600), vectors)
    assert index.kind == kind
    seen: list[int] = []
    inner_search = getattr(FaceIndex, f"_search_{kind}")

    def observed(self: FaceIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        seen.append(faiss.omp_get_max_threads())
        return inner_search(self, queries, k)

    monkeypatch.setattr(FaceIndex, f"_search_{kind}", observed)
    after: list[int] = []

    def pool_thread() -> None:
        faiss.omp_set_num_threads(2)  # what a fresh thread gets on a 2-core machine
        _, found = index.search(vectors[:1], 1)
        assert found[0, 0] == 0
        after.append(faiss.omp_get_max_threads())

    thread = threading.Thread(target=pool_thread)
    thread.start()
    thread.join()
    assert seen == [1]
    assert after == [2]
