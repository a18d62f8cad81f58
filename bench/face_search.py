"""Benchmark the face index: single-query latency and recall@1 against an exact NumPy scan.

    python bench/face_search.py            # 10k and 100k vectors, about two minutes on 2 cores
    python bench/face_search.py --million  # also 1M: the HNSW build alone takes ~25 min on 2 shared cores
    python bench/face_search.py --sizes 100000 --ef-sweep 64,128,256,512  # recall/latency per efSearch

The data imitates face embeddings: 128-d unit vectors in identity clusters (5 photos per identity, cosine
to the identity's centre ~0.7, so same-identity pairs sit near 0.5-0.8 and strangers near 0). Queries are
fresh photos of enrolled identities. Each size is measured with the exact flat index and with HNSW, and
``default`` marks the kind ``FaceIndex`` picks at that size. Ratios compare with the NumPy scan of the
same run (speed-up = NumPy latency / index latency).

Searches run single-threaded (faiss OpenMP and NumPy's BLAS), as one request among many in a server;
builds use every core. On a shared machine the p99 column mostly measures the neighbours.
"""

from __future__ import annotations

import os

# Before NumPy loads BLAS: one thread per query, matching how the service serves concurrent requests.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.face.vector_index import FaceIndex, IndexSettings

DIM = 128
PER_IDENTITY = 5
NOISE = 1.0  # per-vector noise norm relative to the unit centre: cosine to centre ~ 1/sqrt(2)


@dataclass(frozen=True)
class Row:
    size: int
    kind: str
    default: bool
    build_s: float
    p50_ms: float
    p99_ms: float
    numpy_p50_ms: float
    numpy_p99_ms: float
    recall_at_1: float
    ef_search: int | None


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def clustered_data(size: int, queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = _unit(rng.standard_normal((max(1, size // PER_IDENTITY), DIM)))

    def sample(n: int) -> np.ndarray:
        labels = rng.integers(0, len(centres), n)
        return _unit(centres[labels] + NOISE * _unit(rng.standard_normal((n, DIM))))

    return sample(size), sample(queries)


def exact_top1(database: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.concatenate([np.argmax(chunk @ database.T, axis=1) for chunk in np.array_split(queries, 20)])


def latencies_ms(search: Callable[[np.ndarray], object], queries: np.ndarray) -> np.ndarray:
    times = np.empty(len(queries))
    for i, query in enumerate(queries):
        started = time.perf_counter()
        search(query[np.newaxis])
        times[i] = time.perf_counter() - started
    return times * 1000


def ef_sweep(index: FaceIndex, queries: np.ndarray, truth: np.ndarray, values: Sequence[int]) -> None:
    """Recall and latency of one built HNSW graph at other efSearch values (no rebuild needed)."""
    pinned = index.settings.ef_search
    for ef in values:
        index.set_ef_search(ef)
        _, found = index.search(queries, 1)
        ms = latencies_ms(lambda q: index.search(q, 1), queries[:300])
        p50, p99 = np.percentile(ms, [50, 99])
        recall = float(np.mean(found[:, 0] == truth))
        print(f"{'':>9} {'':<6} {'':>8} {p50:8.3f} {p99:8.3f} {'':>9} {'':>9} {'':>9} {'':>9} {recall:9.4f}"
              f"  efSearch={ef}", flush=True)  # fmt: skip
    index.set_ef_search(pinned)


def measure(
    size: int, kind: str, default: bool, database: np.ndarray, queries: np.ndarray, truth: np.ndarray,
    numpy_ms: np.ndarray, settings: IndexSettings, sweep: Sequence[int] = (),
) -> Row:  # fmt: skip
    threshold = size if kind == "flat" else 0
    index = FaceIndex(DIM, replace(settings, approximate_threshold=threshold))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index.build_from(np.arange(size, dtype=np.int64), database)
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    assert index.kind == kind
    _, found = index.search(queries, 1)
    ms = latencies_ms(lambda q: index.search(q, 1), queries)
    p50, p99 = np.percentile(ms, [50, 99])
    if kind == "hnsw" and sweep:
        ef_sweep(index, queries, truth, sweep)
    numpy_p50, numpy_p99 = np.percentile(numpy_ms, [50, 99])
    recall = float(np.mean(found[:, 0] == truth))
    ef = index.ef_search if kind == "hnsw" else None
    return Row(size, kind, default, build_s, float(p50), float(p99), float(numpy_p50), float(numpy_p99), recall, ef)


def bench_size(
    size: int, query_count: int, settings: IndexSettings, rng: np.random.Generator, sweep: Sequence[int]
) -> Iterator[Row]:
    database, queries = clustered_data(size, query_count, rng)
    truth = exact_top1(database, queries)
    numpy_ms = latencies_ms(lambda q: np.argmax(database @ q[0]), queries[: min(query_count, 300)])
    default_kind = "flat" if size <= settings.approximate_threshold else "hnsw"
    for kind in ("flat", "hnsw"):
        yield measure(size, kind, kind == default_kind, database, queries, truth, numpy_ms, settings, sweep)


def print_row(row: Row) -> None:
    print(
        f"{row.size:>9,} {row.kind + ('*' if row.default else ''):<6} {row.build_s:8.1f} "
        f"{row.p50_ms:8.3f} {row.p99_ms:8.3f} {row.numpy_p50_ms:9.3f} {row.numpy_p99_ms:9.3f} "
        f"{row.numpy_p50_ms / row.p50_ms:8.1f}x {row.numpy_p99_ms / row.p99_ms:8.1f}x {row.recall_at_1:9.4f}"
        + (f"  efSearch={row.ef_search}" if row.ef_search else ""),
        flush=True,
    )


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--million", action="store_true", help="also benchmark 1,000,000 vectors")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--ef-search", type=int, default=None, help="pin efSearch (default: by size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=_int_list, help="comma-separated sizes instead of 10000,100000[,1000000]")
    parser.add_argument("--ef-sweep", type=_int_list, default=[], help="also try these efSearch values on HNSW")
    args = parser.parse_args()
    settings = IndexSettings(ef_search=args.ef_search)
    sizes = args.sizes or [10_000, 100_000] + ([1_000_000] if args.million else [])
    rng = np.random.default_rng(args.seed)
    print(f"dim {DIM}, {args.queries} single-vector queries, k=1; HNSW M={settings.hnsw_m} "
          f"efConstruction={settings.ef_construction} efSearch={settings.ef_search or 'sqrt(n)/2 in 64..1024'}; "
          f"exact below {settings.approximate_threshold:,} (* = FaceIndex default at that size)")  # fmt: skip
    print(f"{'vectors':>9} {'kind':<6} {'build_s':>8} {'p50_ms':>8} {'p99_ms':>8} {'np_p50_ms':>9} "
          f"{'np_p99_ms':>9} {'p50_gain':>9} {'p99_gain':>9} {'recall@1':>9}")  # fmt: skip
    for size in sizes:
        for row in bench_size(size, args.queries, settings, rng, args.ef_sweep):
            print_row(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
