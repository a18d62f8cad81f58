"""A per-collection nearest-neighbour index of face features over faiss.

Each vector carries an int64 id (a feature row id; mapping rows to target ids is the caller's job).
Vectors are L2-normalised on the way in, so scores are cosine similarities in [-1, 1].

* Up to ``approximate_threshold`` vectors the index is exact: ``IndexFlatIP`` inside ``IndexIDMap2``,
  searched on a GPU copy when faiss sees a GPU.
* Past it, an inverted file of 4-bit product-quantised codes scanned with SIMD (``IndexIVFPQFastScan``)
  picks candidates, and the candidates are re-ranked on the stored float vectors: a search probes
  ``probe_fraction`` of the lists, keeps the ``rerank`` best by their codes (more when more results are
  asked for) and scores those exactly, so every score is an exact cosine and the only approximation is
  which vectors become candidates. Chosen by bench/face_search.py on face-like 128-d data at 1M vectors
  (see there): HNSW (M=32) reached recall@1 0.96 at 10x the NumPy scan and took ~25 min to build on 2
  cores; this index reaches >= 0.99 at far more than 30x and builds in about a minute. Face features sit
  far from their nearest neighbour (same person: cosine ~0.75), so the lists that hold it are not always
  the nearest few: the probe fraction, not the code size, is what buys recall (`probe_fraction`).

Removal is immediate in both kinds: physical in the exact one; in the approximate one the rows are
marked dead and dropped from the candidates before re-ranking (a search fetches that many more), since
dropping entries from an inverted file scans every list (~6 ms at 200k vectors, under the lock).

Rebuilding never stalls searches: the replacement is built beside the live index in a thread of its own
while searches, additions and removals go on against the live one; the changes made meanwhile are
recorded and replayed onto the replacement, which is then swapped in under the lock. What starts one:
crossing ``approximate_threshold``; a collection grown to ``growth_factor`` times the size its lists were
trained for (their centroids no longer fit it); removed vectors' rows exceeding ``dead_fraction`` of the
rows kept (reclaimed; with few left it becomes exact again). ``build_from`` replaces the content outright.

All methods take one lock, held only for short work (a search, an addition, a swap): the index is safe
to share between threads.

faiss parallelises even a one-vector search with OpenMP, which only adds latency when requests already
run in parallel (a 10k flat search went from 0.15 ms to a 20-30 ms p99 on 2 shared cores). OpenMP's thread
count is a setting of each calling thread, and the threads of a server's pool start at every core whatever
its main thread set, so each search sets ``search_threads`` for itself and puts the caller's back after.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal, Protocol, cast

import faiss
import numpy as np

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "ivf"]
EMPTY_ID = -1
# Training points per list: faiss asks for at least 39 per centroid; more buys little and costs build time.
_TRAINING_PER_LIST = 64
# faiss cannot train 16 centroids per PQ sub-space on fewer points; a smaller collection's codebooks are
# filled up with random unit vectors (it has one list then, and every vector is re-ranked exactly anyway).
_MIN_TRAINING = 256
# Rows a bulk step takes at once: one NumPy copy or dict update holds the GIL throughout (a million rows:
# 100+ ms, a stall of every search in other threads while a rebuild builds); slices let it change hands.
_SLICE = 65_536
_REBUILD_NICENESS = 10
# A rebuild of at most this many vectors is done at once, under the lock (milliseconds): a small collection
# is never left in the old kind for a moment, and a thread is not worth starting for it.
_INLINE_REBUILD = 1_000


@dataclass(frozen=True)
class IndexSettings:
    # Exact search of 100k 128-d vectors takes ~3.5 ms on one core; past that the inverted file pays.
    approximate_threshold: int = 100_000
    # Share of the inverted lists a search probes: recall@1 on 1M face-like vectors (bench/face_search.py)
    # with 256 candidates 0.995 at 40% (p50 1.2 ms), 0.997-0.998 at 50% (1.9 ms); with 64 candidates
    # 0.977-0.980 at 20%, 0.988-0.989 at 30%, 0.990-0.994 at 40%: past 40% the candidates count more.
    probe_fraction: float = 0.4
    # Candidates re-ranked exactly per query (at least; k * 2 when more results are asked for). At 1M and
    # half the lists: recall@1 0.992 with 64, 0.994 with 128, 0.998 with 256 for +0.35 ms; the misses left
    # are queries whose best match is a stranger at cosine ~0.5, with another within 0.03 of it.
    rerank: int = 256
    growth_factor: float = 2.0
    dead_fraction: float = 0.2
    use_gpu: bool | None = None  # None: whenever faiss.get_num_gpus() > 0
    # OpenMP threads per search: one, since requests already run in parallel.
    search_threads: int = 1


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


def list_count(vectors: int) -> int:
    """Inverted lists for a collection of ``vectors``: ~sqrt(n), a power of two (256 at 100k, 1024 at 1M),
    and never fewer than `_TRAINING_PER_LIST` vectors a list. What a search scans is the probed share of
    the vectors whatever the count; more lists cost training time (k-means on 64 points a list: 4096
    lists at 1M took minutes on the loaded 2 cores, 1024 under a minute)."""
    wanted = 1 << round(math.log2(max(1.0, math.sqrt(vectors))))
    return max(1, min(wanted, 1 << int(math.log2(max(1, vectors // _TRAINING_PER_LIST)))))


def _pq_subspaces(dim: int) -> int:
    """Sub-quantisers of the codes: 4 dimensions each (32 for SFace's 128), else the nearest divisor."""
    return max([m for m in range(1, dim // 4 + 1) if dim % m == 0], default=1)


def _lower_priority() -> None:
    """Nice the calling thread 10 more (Linux applies a thread id's nice value to that thread alone)."""
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + _REBUILD_NICENESS))
    except (AttributeError, OSError):  # not Linux, or not allowed: the rebuild runs as it is
        pass


@functools.cache
def _gpu_resources() -> faiss.StandardGpuResources:
    return faiss.StandardGpuResources()


class _Storage(Protocol):
    """What FaceIndex asks of its exact or approximate storage (always under FaceIndex's lock)."""

    kind: IndexKind

    @property
    def size(self) -> int: ...
    def present(self, ids: np.ndarray) -> np.ndarray: ...
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def needs_rebuild(self, settings: IndexSettings) -> bool: ...
    def snapshot(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]: ...


class _Exact:
    kind: IndexKind = "flat"

    def __init__(self, dim: int, use_gpu: bool) -> None:
        self._flat = faiss.IndexFlatIP(dim)  # IndexIDMap2 does not own a Python-created sub-index: keep it
        self._index = faiss.IndexIDMap2(self._flat)
        self._use_gpu = use_gpu
        self._gpu_copy: faiss.Index | None = None

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def _ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map)

    def present(self, ids: np.ndarray) -> np.ndarray:
        return ids[np.isin(ids, self._ids())]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add_with_ids(vectors, ids)
        self._gpu_copy = None

    def remove(self, ids: np.ndarray) -> None:
        self._index.remove_ids(faiss.IDSelectorBatch(ids))
        self._gpu_copy = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self._use_gpu:
            scores, ids = self._index.search(queries, k)
            return scores, ids
        # The GPU holds a copy of the flat storage (positions, not ids), refreshed after a change.
        if self._gpu_copy is None:
            self._gpu_copy = faiss.index_cpu_to_gpu(_gpu_resources(), 0, self._flat)
        scores, positions = self._gpu_copy.search(queries, k)
        id_map = self._ids()
        return scores, np.where(positions >= 0, id_map[np.maximum(positions, 0)], EMPTY_ID)

    def needs_rebuild(self, settings: IndexSettings) -> bool:
        return self.size > settings.approximate_threshold

    def snapshot(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        # Removal compacts the flat storage, so the copy is taken now (at most ~threshold vectors).
        ids, vectors = self._ids(), self._flat.reconstruct_n(0, self.size)
        return lambda: (ids, vectors)


class _Approximate:
    """Inverted file of fast-scan PQ codes over row positions, plus the float rows for re-ranking.

    Rows are append-only: an addition takes new rows, a removal marks its rows dead (their list entries
    stay until the next rebuild reclaims them). So rows below `_rows` never change, and a rebuild can copy
    them outside the lock."""

    kind: IndexKind = "ivf"

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, settings: IndexSettings) -> None:
        count, dim = vectors.shape
        self.trained_for = count
        lists = list_count(count)
        # index_factory is typed as returning the base Index; faiss hands back the concrete class.
        self._index = cast(
            faiss.IndexIVFPQFastScan,
            faiss.index_factory(dim, f"IVF{lists},PQ{_pq_subspaces(dim)}x4fs", faiss.METRIC_INNER_PRODUCT),
        )
        # The sample is ours (`_training_sample`); faiss would warn at every small collection's build.
        self._index.cp.min_points_per_centroid = self._index.pq.cp.min_points_per_centroid = 1
        self._index.train(_training_sample(vectors, lists))
        self.set_probe_fraction(settings.probe_fraction)
        self._rerank = settings.rerank
        capacity = max(count + 1024, int(count * settings.growth_factor) + 1)
        # np.empty does not touch the pages: the room for growth costs no memory until it is used.
        self._vectors = np.empty((capacity, dim), np.float32)
        self._ids = np.empty(capacity, np.int64)
        self._alive = np.zeros(capacity, bool)
        self._positions: dict[int, int] = {}
        self._rows = 0
        self.add(ids, vectors)

    @property
    def size(self) -> int:
        return len(self._positions)

    def set_probe_fraction(self, fraction: float) -> None:
        self._index.nprobe = max(1, min(self._index.nlist, math.ceil(fraction * self._index.nlist)))

    def present(self, ids: np.ndarray) -> np.ndarray:
        return np.array([i for i in ids.tolist() if i in self._positions], dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self._rows + len(ids) > len(self._ids):
            self._grow(max(self._rows + len(ids), 2 * len(self._ids)))
        for first in range(0, len(ids), _SLICE):
            start, end = self._rows, self._rows + min(_SLICE, len(ids) - first)
            self._vectors[start:end] = vectors[first : first + end - start]
            self._ids[start:end] = ids[first : first + end - start]
            self._alive[start:end] = True
            self._positions.update(zip(self._ids[start:end].tolist(), range(start, end)))
            self._rows = end
            self._index.add_with_ids(self._vectors[start:end], np.arange(start, end, dtype=np.int64))

    def _grow(self, capacity: int) -> None:
        # Only when a collection outgrows growth_factor before its rebuild is done: new arrays (a rebuild
        # copying the old ones keeps its reference to them).
        rows = self._rows
        vectors, ids, alive = self._vectors, self._ids, self._alive
        self._vectors = np.empty((capacity, vectors.shape[1]), np.float32)
        self._ids = np.empty(capacity, np.int64)
        self._alive = np.zeros(capacity, bool)
        self._vectors[:rows], self._ids[:rows], self._alive[:rows] = vectors[:rows], ids[:rows], alive[:rows]

    def remove(self, ids: np.ndarray) -> None:
        self._alive[[self._positions.pop(i) for i in ids.tolist()]] = False

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        live_share = max(1, self.size) / self._rows
        fetch = min(self._rows, math.ceil(max(self._rerank, 2 * k) / live_share) + 8)
        _, candidates = self._index.search(queries, fetch)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_ids = np.full((len(queries), k), EMPTY_ID, dtype=np.int64)
        for row, query in enumerate(queries):
            rows = candidates[row][candidates[row] >= 0]
            rows = rows[self._alive[rows]]
            exact = self._vectors[rows] @ query
            best = np.argsort(-exact, kind="stable")[:k]
            out_scores[row, : len(best)] = exact[best]
            out_ids[row, : len(best)] = self._ids[rows[best]]
        return out_scores, out_ids

    def needs_rebuild(self, settings: IndexSettings) -> bool:
        dead = self._rows - self.size
        return self.size > settings.growth_factor * self.trained_for or dead > settings.dead_fraction * self._rows

    def snapshot(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        vectors, ids, alive = self._vectors, self._ids, self._alive[: self._rows].copy()

        def live_rows() -> tuple[np.ndarray, np.ndarray]:
            keep = np.flatnonzero(alive)
            live = np.empty((len(keep), vectors.shape[1]), np.float32)
            for first in range(0, len(keep), _SLICE):
                live[first : first + _SLICE] = vectors[keep[first : first + _SLICE]]
            return ids[keep], live

        return live_rows


def _training_sample(vectors: np.ndarray, lists: int) -> np.ndarray:
    count, dim = vectors.shape
    rng = np.random.default_rng(count)
    wanted = lists * _TRAINING_PER_LIST
    sample = vectors if count <= wanted else vectors[np.sort(rng.choice(count, wanted, replace=False))]
    if len(sample) < _MIN_TRAINING:
        filler = rng.standard_normal((_MIN_TRAINING - len(sample), dim)).astype(np.float32)
        sample = np.concatenate([sample, filler / np.linalg.norm(filler, axis=1, keepdims=True)])
    return np.ascontiguousarray(sample, dtype=np.float32)


@dataclass(frozen=True)
class _Change:
    """A change made while a rebuild runs, replayed onto the replacement before the swap."""

    ids: np.ndarray
    vectors: np.ndarray | None  # None: a removal

    def apply(self, storage: _Storage) -> None:
        if self.vectors is None:
            storage.remove(storage.present(self.ids))
        else:
            storage.add(self.ids, self.vectors)


class FaceIndex:
    def __init__(self, dim: int, settings: IndexSettings | None = None) -> None:
        self.dim = dim
        self.settings = settings or IndexSettings()
        self._lock = threading.RLock()
        self._rebuilt = threading.Condition(self._lock)
        self._use_gpu = self.settings.use_gpu if self.settings.use_gpu is not None else faiss.get_num_gpus() > 0
        self._storage: _Storage = _Exact(dim, self._use_gpu)
        # While a rebuild runs: the changes made since its snapshot. `_generation` moves on at every swap,
        # so that a rebuild overtaken by build_from is thrown away.
        self._journal: list[_Change] | None = None
        self._builder: threading.Thread | None = None
        self._generation = 0
        self.rebuilds = 0

    # --- public API ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Live vectors."""
        with self._lock:
            return self._storage.size

    def __len__(self) -> int:
        return self.size

    @property
    def kind(self) -> IndexKind:
        return self._storage.kind

    @property
    def rebuilding(self) -> bool:
        return self._builder is not None

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        ids_array = _as_ids(ids)
        vectors_array = _as_unit_vectors(vectors, self.dim)
        if len(ids_array) != len(vectors_array):
            raise ValueError(f"{len(ids_array)} ids for {len(vectors_array)} vectors")
        if len(np.unique(ids_array)) != len(ids_array):
            raise DuplicateIdError("ids repeat within one add")
        with self._lock, _omp_threads(self.settings.search_threads):
            clash = self._storage.present(ids_array)
            if len(clash):
                raise DuplicateIdError(f"ids already indexed: {clash[:10].tolist()}")
            self._storage.add(ids_array, vectors_array)
            self._record(_Change(ids_array, vectors_array))

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove ids (unknown ones are ignored); returns how many were present. Effective at once."""
        ids_array = np.unique(_as_ids(ids))
        with self._lock, _omp_threads(self.settings.search_threads):
            present = self._storage.present(ids_array)
            if len(present):
                self._storage.remove(present)
                self._record(_Change(present, None))
            return len(present)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per query: (scores float32 (N, k'), ids int64 (N, k')), best first, k' = min(k, size).

        A slot the approximate index could not fill (its probed lists held fewer vectors) holds id -1 and
        score -inf.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        query_array = _as_unit_vectors(queries, self.dim)
        with self._lock, _omp_threads(self.settings.search_threads):
            wanted = min(k, self._storage.size)
            if wanted == 0:
                return np.empty((len(query_array), 0), np.float32), np.empty((len(query_array), 0), np.int64)
            return self._storage.search(query_array, wanted)

    def build_from(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole content, choosing exact or approximate by size. Built in the calling thread
        while searches go on against the current content; changes made meanwhile are superseded."""
        ids_array = _as_ids(ids)
        vectors_array = _as_unit_vectors(vectors, self.dim) if len(ids_array) else np.empty((0, self.dim), np.float32)
        if len(ids_array) != len(vectors_array):
            raise ValueError(f"{len(ids_array)} ids for {len(vectors_array)} vectors")
        if len(np.unique(ids_array)) != len(ids_array):
            raise DuplicateIdError("ids repeat")
        replacement = self._build(ids_array, vectors_array)
        with self._lock:
            self._swap(replacement)

    def set_probe_fraction(self, fraction: float) -> None:
        """Trade the approximate index's speed for recall at run time."""
        if not 0 < fraction <= 1:
            raise ValueError("the probe fraction is within (0, 1]")
        with self._lock:
            self.settings = replace(self.settings, probe_fraction=fraction)
            if isinstance(self._storage, _Approximate):
                self._storage.set_probe_fraction(fraction)

    def contains(self, feature_id: int) -> bool:
        with self._lock:
            return bool(len(self._storage.present(_as_ids([feature_id]))))

    def wait_for_rebuild(self, timeout: float | None = None) -> bool:
        """Wait until no rebuild runs; False if one still does after `timeout` seconds."""
        with self._rebuilt:
            return self._rebuilt.wait_for(lambda: self._builder is None, timeout)

    # --- internals -------------------------------------------------------------------------------

    def _build(self, ids: np.ndarray, vectors: np.ndarray) -> _Storage:
        if len(ids) > self.settings.approximate_threshold:
            return _Approximate(ids, vectors, self.settings)
        storage = _Exact(self.dim, self._use_gpu)
        if len(ids):
            storage.add(ids, vectors)
        return storage

    def _swap(self, replacement: _Storage) -> None:
        self._storage = replacement
        self._journal = None
        self._generation += 1

    def _record(self, change: _Change) -> None:
        """After a change (under the lock): note it for a running rebuild, or start one if it is due."""
        if self._journal is not None:
            self._journal.append(change)
        elif self._builder is None and self._storage.needs_rebuild(self.settings):
            if self._storage.size <= _INLINE_REBUILD:
                self._swap(self._build(*self._storage.snapshot()()))
                self.rebuilds += 1
                return
            self._journal = []
            self._builder = threading.Thread(
                target=self._rebuild,
                args=(self._storage.snapshot(), self._generation),
                name="face-index-rebuild",
                daemon=True,
            )
            self._builder.start()

    def _rebuild(self, snapshot: Callable[[], tuple[np.ndarray, np.ndarray]], generation: int) -> None:
        try:
            # One core is left to the searches and the event loop that go on meanwhile, and the thread
            # yields the CPU to them (on a busy 2-core machine a search's p50 went from 1.9 to 9.3 ms
            # during a 1M rebuild at the same priority).
            _lower_priority()
            with _omp_threads(max(1, (os.cpu_count() or 1) - 1)):
                replacement = self._build(*snapshot())
            with self._lock:
                if generation == self._generation and self._journal is not None:
                    for change in self._journal:
                        change.apply(replacement)
                    self._swap(replacement)
                    self.rebuilds += 1
        except Exception:  # the live index stays as it was, and the next change tries again
            log.exception("rebuilding a face index of %d dimensions failed", self.dim)
        finally:
            with self._rebuilt:
                self._journal = None
                self._builder = None
                self._rebuilt.notify_all()
