"""FaceIndex: exact search, immediate removal, recall of the approximate index on face-like data, and
rebuilds beside the live index (searches never wait for one, changes made meanwhile are kept)."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from services.face import vector_index
from services.face.vector_index import DuplicateIdError, FaceIndex, IndexSettings

DIM = 128


def unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def clustered(size: int, rng: np.random.Generator, per_identity: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Face-like data: identity centres plus each photo's noise, so that two photos of one identity have
    cosine ~0.73, like SFace's same-person pairs (bench/face_search.py); returns data and centres."""
    centres = unit(rng.standard_normal((size // per_identity, DIM)))
    return photos_of(centres, rng.integers(0, len(centres), size), rng), centres


def photos_of(centres: np.ndarray, identities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return unit(centres[identities] + 0.6 * unit(rng.standard_normal((len(identities), DIM))))


def queries_near(centres: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return photos_of(centres, rng.integers(0, len(centres), count), rng)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def approximate_settings(**overrides: float) -> IndexSettings:
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
    with pytest.raises(ValueError):
        index.set_probe_fraction(0)


def test_approximate_index_recall_on_face_like_data(rng: np.random.Generator) -> None:
    vectors, centres = clustered(8000, rng)
    index = FaceIndex(DIM, IndexSettings(approximate_threshold=1000))
    index.build_from(np.arange(len(vectors)), vectors)
    assert index.kind == "ivf"
    queries = queries_near(centres, 400, rng)
    scores, found = index.search(queries, 5)
    exact = queries @ vectors.T
    truth = np.argmax(exact, axis=1)
    assert np.mean(found[:, 0] == truth) >= 0.97
    # Scores are exact cosines of the vectors returned (re-ranked on the float vectors), best first.
    np.testing.assert_allclose(scores, np.take_along_axis(exact, found, axis=1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    index.set_probe_fraction(0.01)  # the knob reaches the live index: one list finds less
    _, narrow = index.search(queries, 1)
    assert np.mean(narrow[:, 0] == truth) < np.mean(found[:, 0] == truth)


def test_small_approximate_index_finds_everything(rng: np.random.Generator) -> None:
    """Below faiss's training minimum the codebooks are filled with random vectors; one list holds all."""
    for size in (1, 3, 40):
        vectors = unit(rng.standard_normal((size, DIM)))
        index = FaceIndex(DIM, IndexSettings(approximate_threshold=0))
        index.build_from(np.arange(size) + 100, vectors)
        _, found = index.search(vectors, min(size, 3))
        assert index.kind == "ivf"
        np.testing.assert_array_equal(found[:, 0], np.arange(size) + 100)


def test_a_small_collection_growing_past_the_threshold_switches_at_once(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((300, DIM)))
    index = FaceIndex(DIM, approximate_settings())
    index.add(np.arange(80), vectors[:80])
    index.add(np.arange(80, 300), vectors[80:])
    assert (index.kind, index.size, index.rebuilds, index.rebuilding) == ("ivf", 300, 1, False)
    _, found = index.search(vectors[:50], 1)
    assert np.mean(found[:, 0] == np.arange(50)) >= 0.95


def test_removal_in_approximate_index_is_immediate_and_reclaims(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((1000, DIM)))
    index = FaceIndex(DIM, approximate_settings(dead_fraction=0.2))
    index.build_from(np.arange(1000), vectors)
    assert index.remove(np.arange(100)) == 100
    assert index.size == 900 and not index.rebuilding
    _, found = index.search(vectors[:100], 20)
    assert found.shape == (100, 20) and not np.isin(found, np.arange(100)).any()
    assert index.remove(np.arange(100)) == 0  # already gone

    index.remove(np.arange(100, 250))  # 250 dead rows of 1000 > 20%: rebuilt from the living
    assert index.size == 750 and index.kind == "ivf" and index.rebuilds == 1
    _, found = index.search(vectors[:300], 10)
    assert not np.isin(found, np.arange(250)).any()
    _, found = index.search(vectors[250:300], 1)
    assert np.mean(found[:, 0] == np.arange(250, 300)) >= 0.95


def test_reclaiming_returns_to_exact_when_small(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((200, DIM)))
    index = FaceIndex(DIM, approximate_settings())
    index.build_from(np.arange(200), vectors)
    index.remove(np.arange(150))
    assert index.kind == "flat" and index.size == 50


def test_readding_a_removed_id_uses_the_new_vector(rng: np.random.Generator) -> None:
    vectors = unit(rng.standard_normal((400, DIM)))
    index = FaceIndex(DIM, approximate_settings())
    index.build_from(np.arange(400), vectors)
    index.remove([5])
    replacement = unit(rng.standard_normal((1, DIM)))
    index.add([5], replacement)
    scores, found = index.search(replacement, 1)
    assert found[0, 0] == 5 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    old_scores, old_found = index.search(vectors[5:6], 3)
    assert index.size == 400
    assert not ((old_found == 5) & (old_scores > 0.99)).any()  # the dead copy is never found


class HeldBuild:
    """Holds background rebuilds until released, so that a test can act while one runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        build = FaceIndex._build

        def held(index: FaceIndex, ids: np.ndarray, vectors: np.ndarray) -> object:
            if threading.current_thread().name == "face-index-rebuild":
                self.started.set()
                assert self.release.wait(60)
            return build(index, ids, vectors)

        monkeypatch.setattr(FaceIndex, "_build", held)


def run_with_timeout(action, seconds: float = 10):  # type: ignore[no-untyped-def]
    """Runs `action` in a thread; fails if it has not finished within `seconds` (it waited on a lock)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(action()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked while a rebuild ran"
    return result[0]


def test_searches_and_changes_go_on_while_a_rebuild_runs(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldBuild(monkeypatch)
    vectors = unit(rng.standard_normal((3000, DIM)))
    index = FaceIndex(DIM, IndexSettings(approximate_threshold=1000))
    index.add(np.arange(900), vectors[:900])
    index.add(np.arange(900, 2100), vectors[900:2100])  # past the threshold: a rebuild starts, and is held
    assert held.started.wait(30) and index.rebuilding

    _, found = run_with_timeout(lambda: index.search(vectors[:20], 1))
    np.testing.assert_array_equal(found[:, 0], np.arange(20))  # the live index answers, exactly
    run_with_timeout(lambda: index.add(np.arange(2100, 3000), vectors[2100:3000]))
    assert run_with_timeout(lambda: index.remove(np.arange(0, 10))) == 10
    _, found = run_with_timeout(lambda: index.search(vectors[:10], 3))
    assert not np.isin(found, np.arange(10)).any()
    assert index.kind == "flat" and index.size == 2990

    held.release.set()
    assert index.wait_for_rebuild(timeout=60)
    assert index.kind == "ivf" and index.rebuilds == 1
    # Made while the replacement was being built, and still there after the swap: not lost, not undone.
    assert index.size == 2990 and not index.contains(5) and index.contains(2500)
    _, found = index.search(vectors[2100:3000], 1)
    assert np.mean(found[:, 0] == np.arange(2100, 3000)) >= 0.95
    _, found = index.search(vectors[:10], 5)
    assert not np.isin(found, np.arange(10)).any()


def test_build_from_supersedes_a_running_rebuild(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    held = HeldBuild(monkeypatch)
    vectors = unit(rng.standard_normal((1600, DIM)))
    index = FaceIndex(DIM, IndexSettings(approximate_threshold=1000))
    index.add(np.arange(1500), vectors[:1500])
    assert held.started.wait(30)
    index.build_from(np.arange(10_000, 10_050), vectors[1500:1550])  # the content now, built in this thread
    held.release.set()
    assert index.wait_for_rebuild(timeout=60)
    assert index.kind == "flat" and index.size == 50 and index.rebuilds == 0 and not index.contains(1)


def test_a_failed_rebuild_leaves_the_live_index(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    build = FaceIndex._build
    failures = []

    def failing_once(index: FaceIndex, ids: np.ndarray, vectors: np.ndarray) -> object:
        if not failures:
            failures.append(len(ids))
            raise MemoryError("no room for the replacement")
        return build(index, ids, vectors)

    monkeypatch.setattr(FaceIndex, "_build", failing_once)
    vectors = unit(rng.standard_normal((1600, DIM)))
    index = FaceIndex(DIM, IndexSettings(approximate_threshold=1000))
    index.add(np.arange(1500), vectors[:1500])
    assert index.wait_for_rebuild(timeout=60)
    assert failures == [1500] and index.kind == "flat" and index.size == 1500
    index.add(np.arange(1500, 1600), vectors[1500:])  # the next change tries again
    assert index.wait_for_rebuild(timeout=60)
    assert index.kind == "ivf" and index.size == 1600


def test_concurrent_use(rng: np.random.Generator) -> None:
    index = FaceIndex(DIM, approximate_settings())
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
    assert index.wait_for_rebuild(timeout=60)
    assert index.size == 800 - 4 * 50
    live = np.array([i for i in range(800) if i % 20 >= 5])
    _, found = index.search(vectors[live], 1)
    assert np.mean(found[:, 0] == live) >= 0.95


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_search_uses_one_openmp_thread_in_any_calling_thread(
    kind: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenMP's thread count belongs to each thread: a pool thread starts at every core whatever the main
    thread set, and a one-vector search spread over cores only waits on them. The search pins itself to
    `search_threads` and leaves the caller's setting as it was."""
    vectors, _ = clustered(600, rng)
    index = FaceIndex(DIM, IndexSettings(approximate_threshold=500 if kind == "ivf" else 10_000))
    index.build_from(np.arange(600), vectors)
    assert index.kind == kind
    seen: list[int] = []
    storage = vector_index._Exact if kind == "flat" else vector_index._Approximate
    inner_search = storage.search

    def observed(self: object, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        seen.append(faiss.omp_get_max_threads())
        return inner_search(self, queries, k)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "search", observed)
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
