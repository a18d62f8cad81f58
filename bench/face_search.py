"""Benchmark the face index: single-query latency, recall@1 against an exact scan, build time and memory.

    python bench/face_search.py             # 10k and 100k vectors, a minute or two on 2 cores
    python bench/face_search.py --million   # also 1M (~1.5 GB of memory; builds take a minute or two)
    python bench/face_search.py --sizes 1000000 --probe-sweep 0.2,0.3,0.4,0.5  # recall/latency per probe share
    python bench/face_search.py --data isotropic  # the harder, less face-like data of earlier rounds
    python bench/face_search.py --hnsw      # also faiss HNSW (M=32, efConstruction 100), for comparison
    python bench/face_search.py --sizes 1e6 --kinds ivf  # the approximate index alone (the exact one is slow)

Data (``--data face``, the default) imitates SFace's 128-d features as measured on the 119 faces of
../shared/faces (each photo's largest face, embedded by the service's engine): two photos of one person
have cosine 0.76 +- 0.09 (54 labelled pairs), two people 0.13 +- 0.10 (6,747 pairs), and the features
are anisotropic (their mean has norm 0.40; a few directions carry most of the variance). The generator
draws identity centres from a Gaussian with that mean and a power-law spectrum (variance of the i-th
direction ~ i^-0.5, fitted to the strangers' spread) and adds each photo's own noise in the same shape,
scaled to the same-person cosine; it prints the figures it reaches next to the real ones. Embedding
real photos and perturbing them was the other option: 119 faces are too few identities to fill a
million-vector index without the perturbation deciding everything. ``--data isotropic`` is the previous
rounds' data (isotropic Gaussian centres, same-person cosine ~0.5, strangers 0 +- 0.09): harder for
any index than real features, kept to compare with the earlier figures.

A database holds 5 photos per identity; queries are fresh photos of enrolled identities (the search a
face login or 002's search makes), and recall@1 is the share whose top result is the exact scan's.
Searches run single-threaded (faiss OpenMP and NumPy's BLAS), as one request among many in a server;
builds use every core. The speed-up compares with the NumPy scan of the same run (NumPy p50 / index
p50), which keeps the ratio meaningful on a loaded machine; the p99 column mostly measures neighbours.
"Memory" is the growth of resident memory while the index is built (its own copy of the vectors
included), per million vectors. "During rebuild": 21% of the vectors are removed, which starts a
rebuild beside the live index; searches go on meanwhile and their latency is shown.
"""

from __future__ import annotations

import os

# Before NumPy loads BLAS: one thread per query, matching how the service serves concurrent requests.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import ctypes
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.face.vector_index import FaceIndex, IndexSettings, list_count

DIM = 128
PER_IDENTITY = 5
# Measured on ../shared/faces with SFace (see the docstring): same person, strangers (mean, std).
REAL_SAME = (0.756, 0.088)
REAL_STRANGERS = (0.126, 0.100)
FACE_SPECTRUM_POWER = 0.5  # variance of the i-th direction ~ i^-power
FACE_MEAN_NORM = 0.45
FACE_NOISE = 0.6


@dataclass(frozen=True)
class Row:
    size: int
    kind: str
    default: bool
    build_s: float
    memory_mb_per_million: float
    p50_ms: float
    p99_ms: float
    numpy_p50_ms: float
    numpy_p99_ms: float
    recall_at_1: float
    note: str = ""


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


class FaceLike:
    """Identity centres with SFace's mean and a power-law spectrum; photos add noise of the same shape."""

    def __init__(self, identities: int, rng: np.random.Generator) -> None:
        basis, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
        scale = np.arange(1, DIM + 1) ** (-FACE_SPECTRUM_POWER / 2)
        self.shape = np.asarray(basis * (scale / np.sqrt(np.sum(scale**2))), dtype=np.float32)
        mean = FACE_MEAN_NORM * _unit(rng.standard_normal((1, DIM)))
        self.centres = np.asarray(mean + self._gaussian(identities, rng), dtype=np.float32)

    def _gaussian(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((n, DIM), dtype=np.float32) @ self.shape.T

    def photos(self, identities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _unit(self.centres[identities] + FACE_NOISE * self._gaussian(len(identities), rng))


class Isotropic:
    """The earlier rounds' data: isotropic centres, each photo at cosine ~0.7 to its centre."""

    def __init__(self, identities: int, rng: np.random.Generator) -> None:
        self.centres = _unit(rng.standard_normal((identities, DIM)))

    def photos(self, identities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _unit(self.centres[identities] + _unit(rng.standard_normal((len(identities), DIM))))


def generate(kind: str, size: int, queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    people = (FaceLike if kind == "face" else Isotropic)(max(1, size // PER_IDENTITY), rng)
    database = np.empty((size, DIM), np.float32)
    for start in range(0, size, 100_000):  # in slices: the noise of a million photos at once is 0.5 GB more
        count = min(100_000, size - start)
        database[start : start + count] = people.photos(rng.integers(0, len(people.centres), count), rng)
    return database, people.photos(rng.integers(0, len(people.centres), queries), rng)


def describe_data(kind: str, rng: np.random.Generator) -> str:
    people = (FaceLike if kind == "face" else Isotropic)(4000, rng)
    twice = np.repeat(np.arange(4000), 2)
    photos = people.photos(twice, rng)
    same = np.sum(photos[0::2] * photos[1::2], axis=1)
    strangers = np.sum(photos[0:4000:2] * photos[4001::2], axis=1)
    return (
        f"data {kind}: same person cosine {same.mean():.3f} +- {same.std():.3f} (SFace on ../shared/faces: "
        f"{REAL_SAME[0]:.3f} +- {REAL_SAME[1]:.3f}), strangers {strangers.mean():.3f} +- {strangers.std():.3f} "
        f"(SFace: {REAL_STRANGERS[0]:.3f} +- {REAL_STRANGERS[1]:.3f})"
    )


def exact_top1(database: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.concatenate([np.argmax(chunk @ database.T, axis=1) for chunk in np.array_split(queries, 20)])


def latencies_ms(search: Callable[[np.ndarray], object], queries: np.ndarray) -> np.ndarray:
    times = np.empty(len(queries))
    for i, query in enumerate(queries):
        started = time.perf_counter()
        search(query[np.newaxis])
        times[i] = time.perf_counter() - started
    return times * 1000


def resident_mb() -> float:
    """Resident memory, after handing freed heap back to the system (else a freed array's pages count
    for the next index built into them)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(found[:, 0] == truth))


def probe_sweep(index: FaceIndex, queries: np.ndarray, truth: np.ndarray, fractions: Sequence[float]) -> None:
    """Recall and latency of one built inverted file at other probe shares (no rebuild needed)."""
    chosen = index.settings.probe_fraction
    for fraction in fractions:
        index.set_probe_fraction(fraction)
        _, found = index.search(queries, 1)
        p50, p99 = np.percentile(latencies_ms(lambda q: index.search(q, 1), queries[:300]), [50, 99])
        print(f"{'':>9} {'':<6} {'':>8} {'':>6} {p50:8.3f} {p99:8.3f} {'':>9} {'':>9} {'':>9} {recall(found, truth):9.4f}"
              f"  probes {fraction:.0%}", flush=True)  # fmt: skip
    index.set_probe_fraction(chosen)


def during_rebuild(index: FaceIndex, size: int, queries: np.ndarray) -> str:
    """Removes 21% of the vectors (a rebuild starts beside the live index) and searches until it is done."""
    index.remove(np.arange(0, size, 5))
    index.remove(np.arange(1, size, 95))
    if not index.rebuilding:
        return "no rebuild started"
    started, times = time.perf_counter(), []
    while index.rebuilding:
        query = queries[len(times) % len(queries)][np.newaxis]
        before = time.perf_counter()
        index.search(query, 1)
        times.append(time.perf_counter() - before)
    index.wait_for_rebuild()
    p50, p99 = np.percentile(np.array(times) * 1000, [50, 99])
    return (
        f"during rebuild ({time.perf_counter() - started:.0f}s, {len(times):,} searches): "
        f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {max(times) * 1000:.1f} ms"
    )


def measure(
    size: int, kind: str, default: bool, database: np.ndarray, queries: np.ndarray, truth: np.ndarray,
    numpy_ms: np.ndarray, settings: IndexSettings, sweep: Sequence[float], rebuild: bool,
) -> Row:  # fmt: skip
    threshold = size if kind == "flat" else 0
    index = FaceIndex(DIM, replace(settings, approximate_threshold=threshold))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    memory_before, started = resident_mb(), time.perf_counter()
    index.build_from(np.arange(size, dtype=np.int64), database)
    build_s = time.perf_counter() - started
    memory = (resident_mb() - memory_before) * 1_000_000 / size
    faiss.omp_set_num_threads(1)
    assert index.kind == kind
    _, found = index.search(queries, 1)
    p50, p99 = np.percentile(latencies_ms(lambda q: index.search(q, 1), queries), [50, 99])
    if kind == "ivf" and sweep:
        probe_sweep(index, queries, truth, sweep)
    note = f"{list_count(size)} lists, probes {settings.probe_fraction:.0%}" if kind == "ivf" else ""
    if kind == "ivf" and rebuild:
        note += "; " + during_rebuild(index, size, queries)
    numpy_p50, numpy_p99 = np.percentile(numpy_ms, [50, 99])
    return Row(size, kind, default, build_s, memory, p50, p99, numpy_p50, numpy_p99, recall(found, truth), note)


def measure_hnsw(size: int, database: np.ndarray, queries: np.ndarray, truth: np.ndarray, numpy_ms: np.ndarray) -> Row:
    """faiss HNSW as the previous rounds used it (M=32, efConstruction 100, efSearch sqrt(n)/2 in 64..1024)."""
    index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    memory_before, started = resident_mb(), time.perf_counter()
    index.add(database)
    build_s = time.perf_counter() - started
    memory = (resident_mb() - memory_before) * 1_000_000 / size
    faiss.omp_set_num_threads(1)
    ef = int(min(1024, max(64, np.sqrt(size) / 2)))
    index.hnsw.efSearch = ef
    _, found = index.search(queries, 1)
    p50, p99 = np.percentile(latencies_ms(lambda q: index.search(q, 1), queries), [50, 99])
    numpy_p50, numpy_p99 = np.percentile(numpy_ms, [50, 99])
    return Row(
        size, "hnsw", False, build_s, memory, p50, p99, numpy_p50, numpy_p99, recall(found, truth), f"efSearch {ef}"
    )


def bench_size(size: int, args: argparse.Namespace, settings: IndexSettings, rng: np.random.Generator) -> Iterator[Row]:
    database, queries = generate(args.data, size, args.queries, rng)
    truth = exact_top1(database, queries)
    numpy_ms = latencies_ms(lambda q: np.argmax(database @ q[0]), queries[: min(args.queries, 300)])
    default_kind = "flat" if size <= settings.approximate_threshold else "ivf"
    for kind in args.kinds:
        yield measure(
            size, kind, kind == default_kind, database, queries, truth, numpy_ms, settings, args.probe_sweep,
            rebuild=kind == "ivf" and size == max(args.sizes),
        )  # fmt: skip
    if args.hnsw:
        yield measure_hnsw(size, database, queries, truth, numpy_ms)


def print_row(row: Row) -> None:
    print(
        f"{row.size:>9,} {row.kind + ('*' if row.default else ''):<6} {row.build_s:8.1f} "
        f"{row.memory_mb_per_million:6.0f} {row.p50_ms:8.3f} {row.p99_ms:8.3f} {row.numpy_p50_ms:9.3f} "
        f"{row.numpy_p99_ms:9.3f} {row.numpy_p50_ms / row.p50_ms:8.1f}x {row.recall_at_1:9.4f}"
        + (f"  {row.note}" if row.note else ""),
        flush=True,
    )


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--million", action="store_true", help="also benchmark 1,000,000 vectors")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--data", choices=["face", "isotropic"], default="face")
    parser.add_argument("--probe-fraction", type=float, default=None, help="the share of lists searched")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=lambda t: [int(float(x)) for x in _floats(t)], help="instead of 10k,100k[,1M]")
    parser.add_argument("--probe-sweep", type=_floats, default=[], help="also try these probe shares")
    parser.add_argument("--hnsw", action="store_true", help="also measure faiss HNSW (slow to build at 1M)")
    parser.add_argument("--kinds", type=lambda t: t.split(","), default=["flat", "ivf"], help="flat,ivf or one")
    args = parser.parse_args()
    settings = IndexSettings()
    if args.probe_fraction is not None:
        settings = replace(settings, probe_fraction=args.probe_fraction)
    args.sizes = args.sizes or [10_000, 100_000] + ([1_000_000] if args.million else [])
    rng = np.random.default_rng(args.seed)
    print(describe_data(args.data, rng))
    print(f"dim {DIM}, {args.queries} single-vector queries, k=1; inverted file: ~sqrt(n) lists, "
          f"probes {settings.probe_fraction:.0%} of them, {settings.rerank} candidates re-ranked exactly; "
          f"exact up to {settings.approximate_threshold:,} (* = FaceIndex default at that size)")  # fmt: skip
    print(f"{'vectors':>9} {'kind':<6} {'build_s':>8} {'MB/M':>6} {'p50_ms':>8} {'p99_ms':>8} {'np_p50_ms':>9} "
          f"{'np_p99_ms':>9} {'speed-up':>9} {'recall@1':>9}")  # fmt: skip
    for size in args.sizes:
        for row in bench_size(size, args, settings, rng):
            print_row(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
