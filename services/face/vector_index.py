"""A per-collection nearest-neighbour index of face features over faiss.

Each vector carries an int64 id (a feature row id; mapping rows to target ids is the caller's job).
Vectors are L2-normalised on the way in, so scores are cosine similarities in [-1, 1].

* Up to ``approximate_threshold`` vectors the index is exact: ``IndexFlatIP`` inside ``IndexIDMap2``,
  searched on a GPU copy when faiss sees a GPU. Removal is immediate and physical.
* Past it, the index becomes HNSW (``IndexHNSWFlat``, M=32), which is approximate and cannot delete.
  Removed ids become tombstones: searches over-fetch and drop them, so a removed id is never returned,
  and once tombstones exceed ``tombstone_fraction`` of the stored vectors the index is rebuilt from
  its live vectors (falling back to the exact kind if few are left).

All methods take one lock: the index is safe to share between threads. Rebuilds run under that lock,
so a rebuild of a large HNSW index stalls searches on the same collection while it runs (and crossing
``approximate_threshold`` in ``add`` builds the HNSW graph then: ~1 min per 100k vectors on 2 cores).

faiss parallelises even a one-vector search with OpenMP, which only adds latency when requests already
run in parallel (a 10k flat search went from 0.15 ms to a 20-30 ms p99 on 2 shared cores). OpenMP's thread
count is a setting of each calling thread, and the threads of a server's pool start at every core whatever
its main thread set, so each search sets ``search_threads`` for itself and puts the caller's back after.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

import faiss
import numpy as np

IndexKind = Literal["flat", "hnsw"]
EMPTY_ID = -1


@dataclass(frozen=True)
class IndexSettings:
    # Exact search of 100k 128-d vectors takes ~3.5 ms on one core; past that HNSW pays for its build.
    approximate_threshold: int = 100_000
    hnsw_m: int = 32
    ef_construction: int = 100
    # None: grow with the graph (see auto_ef_search); an int pins it.
    ef_search: int | None = None
    tombstone_fraction: float = 0.2
    use_gpu: bool | None = None  # None: whenever faiss.get_num_gpus() > 0
    # OpenMP threads per search: one, since requests already run in parallel.
    search_threads: int = 1


def auto_ef_search(stored: int) -> int:
    """efSearch for an HNSW graph of ``stored`` vectors: sqrt(n)/2 within 64..1024.

    Measured by bench/face_search.py on face-like clustered 128-d data (M=32, efConstruction=100):
    recall@1 0.977 at ef 64 and 0.996 at ef 128 for 100k vectors; 0.73 at ef 96, 0.91 at 256 and
    0.96 at 512 for 1M, where a fixed small ef falls apart.
    """
    return int(min(1024, max(64, math.sqrt(stored) / 2)))


class DuplicateIdError(ValueError):
    pass


@contextmanager
def _omp_threads(threads: int) -> Iterator[None]:
    """faiss's OpenMP threads for the calling thread within the block."""
    before = faiss.omp_get_max_threads()
    if before == threads:
        yield
        return
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _as_unit_vectors(vectors: np.ndarray, dim: int) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[np.newaxis]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (N, {dim}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("vectors must be finite")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


class FaceIndex:
    def __init__(self, dim: int, settings: IndexSettings | None = None) -> None:
        self.dim = dim
        self.settings = settings or IndexSettings()
        self._lock = threading.RLock()
        self._gpu_wanted = self.settings.use_gpu if self.settings.use_gpu is not None else faiss.get_num_gpus() > 0
        self._gpu_resources: faiss.StandardGpuResources | None = None
        self._inner: faiss.Index
        self._index: faiss.IndexIDMap2
        self._kind: IndexKind
        self._tombstones: set[int]
        self._gpu_copy: faiss.Index | None
        self._reset("flat")

    # --- public API ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Live vectors (removed ones excluded)."""
        with self._lock:
            return self._index.ntotal - len(self._tombstones)

    def __len__(self) -> int:
        return self.size

    @property
    def kind(self) -> IndexKind:
        return self._kind

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        ids_array = _as_ids(ids)
        vectors_array = _as_unit_vectors(vectors, self.dim)
        if len(ids_array) != len(vectors_array):
            raise ValueError(f"{len(ids_array)} ids for {len(vectors_array)} vectors")
        if len(np.unique(ids_array)) != len(ids_array):
            raise DuplicateIdError("ids repeat within one add")
        with self._lock:
            self._check_new(ids_array)
            if self._tombstones and not self._tombstones.isdisjoint(ids_array.tolist()):
                # The dead copy of a re-added id would still be found under that id: purge it first.
                self._compact()
            if self._kind == "flat" and self.size + len(ids_array) > self.settings.approximate_threshold:
                live_ids, live_vectors = self._live_contents()
                self._rebuild(np.concatenate([live_ids, ids_array]), np.concatenate([live_vectors, vectors_array]))
            else:
                self._index.add_with_ids(vectors_array, ids_array)
                self._gpu_copy = None

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove ids (unknown ones are ignored); returns how many were present. Effective at once."""
        ids_array = np.unique(_as_ids(ids))
        with self._lock:
            present = ids_array[np.isin(ids_array, self._stored_ids())]
            present = np.array([i for i in present.tolist() if i not in self._tombstones], dtype=np.int64)
            if not len(present):
                return 0
            if self._kind == "flat":
                self._index.remove_ids(faiss.IDSelectorBatch(present))
                self._gpu_copy = None
            else:
                self._tombstones.update(present.tolist())
                if len(self._tombstones) > self.settings.tombstone_fraction * self._index.ntotal:
                    self._compact()
            return len(present)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per query: (scores float32 (N, k'), ids int64 (N, k')), best first, k' = min(k, size).

        A slot the index could not fill (rare, HNSW only) holds id -1 and score -inf.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        query_array = _as_unit_vectors(queries, self.dim)
        with self._lock, _omp_threads(self.settings.search_threads):
            wanted = min(k, self.size)
            if wanted == 0:
                return np.empty((len(query_array), 0), np.float32), np.empty((len(query_array), 0), np.int64)
            if self._kind == "flat":
                return self._search_flat(query_array, wanted)
            return self._search_hnsw(query_array, wanted)

    def build_from(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole content, choosing exact or approximate by size."""
        ids_array = _as_ids(ids)
        vectors_array = _as_unit_vectors(vectors, self.dim) if len(ids_array) else np.empty((0, self.dim), np.float32)
        if len(ids_array) != len(vectors_array):
            raise ValueError(f"{len(ids_array)} ids for {len(vectors_array)} vectors")
        if len(np.unique(ids_array)) != len(ids_array):
            raise DuplicateIdError("ids repeat")
        with self._lock:
            self._rebuild(ids_array, vectors_array)

    def set_ef_search(self, ef_search: int | None) -> None:
        """Trade HNSW speed for recall at run time (None: automatic by size)."""
        if ef_search is not None and ef_search < 1:
            raise ValueError("ef_search must be at least 1")
        with self._lock:
            self.settings = replace(self.settings, ef_search=ef_search)

    @property
    def ef_search(self) -> int:
        """The efSearch that an HNSW search uses now."""
        return self.settings.ef_search or auto_ef_search(self._index.ntotal)

    def contains(self, feature_id: int) -> bool:
        with self._lock:
            return feature_id not in self._tombstones and bool(np.isin(feature_id, self._stored_ids()))

    # --- internals -------------------------------------------------------------------------------

    def _reset(self, kind: IndexKind) -> None:
        if kind == "flat":
            inner: faiss.Index = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.settings.ef_construction
        self._inner = inner  # IndexIDMap2 does not own a Python-created sub-index: keep it alive
        self._index = faiss.IndexIDMap2(inner)
        self._kind = kind
        self._tombstones = set()
        self._gpu_copy = None

    def _rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._reset("flat" if len(ids) <= self.settings.approximate_threshold else "hnsw")
        if len(ids):
            self._index.add_with_ids(vectors, ids)

    def _compact(self) -> None:
        self._rebuild(*self._live_contents())

    def _stored_ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map)

    def _live_contents(self) -> tuple[np.ndarray, np.ndarray]:
        ids = self._stored_ids()
        if not len(ids):
            return ids, np.empty((0, self.dim), np.float32)
        vectors = self._inner.reconstruct_n(0, self._index.ntotal)
        if self._tombstones:
            keep = ~np.isin(ids, np.fromiter(self._tombstones, dtype=np.int64))
            ids, vectors = ids[keep], vectors[keep]
        return ids, vectors

    def _check_new(self, ids: np.ndarray) -> None:
        clash = ids[np.isin(ids, self._stored_ids())]
        live_clash = [i for i in clash.tolist() if i not in self._tombstones]
        if live_clash:
            raise DuplicateIdError(f"ids already indexed: {live_clash[:10]}")

    def _search_flat(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        gpu = self._gpu_flat()
        if gpu is None:
            scores, ids = self._index.search(queries, k)
            return scores, ids
        scores, positions = gpu.search(queries, k)
        id_map = self._stored_ids()
        ids = np.where(positions >= 0, id_map[np.maximum(positions, 0)], EMPTY_ID)
        return scores, ids

    def _gpu_flat(self) -> faiss.Index | None:
        # The GPU holds a copy of the flat storage (positions, not ids), refreshed after a change.
        if not self._gpu_wanted:
            return None
        if self._gpu_copy is None:
            if self._gpu_resources is None:
                self._gpu_resources = faiss.StandardGpuResources()
            self._gpu_copy = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._inner)
        return self._gpu_copy

    def _search_hnsw(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert isinstance(self._inner, faiss.IndexHNSWFlat)
        self._inner.hnsw.efSearch = self.ef_search
        if not self._tombstones:
            return self._index.search(queries, k)
        dead = np.fromiter(self._tombstones, dtype=np.int64)
        # Expect about k / (1 - dead share) hits to survive; widen until each row has k or all is seen.
        fetch = min(self._index.ntotal, int(k / (1 - len(dead) / self._index.ntotal)) + 8)
        while True:
            scores, ids = self._index.search(queries, fetch)
            alive = (ids != EMPTY_ID) & ~np.isin(ids, dead)
            if fetch >= self._index.ntotal or (alive.sum(axis=1) >= k).all():
                break
            fetch = min(self._index.ntotal, fetch * 2)
        return _first_alive(scores, ids, alive, k)


def _first_alive(scores: np.ndarray, ids: np.ndarray, alive: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    out_scores = np.full((len(ids), k), -np.inf, dtype=np.float32)
    out_ids = np.full((len(ids), k), EMPTY_ID, dtype=np.int64)
    for row in range(len(ids)):
        kept = np.flatnonzero(alive[row])[:k]
        out_scores[row, : len(kept)] = scores[row, kept]
        out_ids[row, : len(kept)] = ids[row, kept]
    return out_scores, out_ids
