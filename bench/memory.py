"""Memory benchmark: insert throughput and search latency of both stores, against baselines.

For each size (memories of one agent) and each store, with precomputed vectors:

- insert throughput through ``add_many`` (embedding cost is measured apart, per text);
- search p50/p99 through ``search_vector`` (limit 10, default ranking weights),
  as a ratio against a baseline measured in the same run:
  SQLite: numpy exact top-k (``M @ q`` + ``argpartition``) over the same matrix;
  PostgreSQL: a raw pgvector ``ORDER BY embedding_vec <=> q LIMIT 10`` over asyncpg, the
  query in pgvector's binary format (its asyncpg codec; the earlier rounds sent a ``real[]``,
  whose conversion cost more than the search at 10k: that ratio is printed too). The paths
  run interleaved, each on a connection of its own (the ``real[]`` one used to share the raw
  baseline's, whose backend then ran two queries in three and stayed warmer than the store's);
- recall@10 of every approximate path against the exact ranking.

Vectors come from a low-dimensional latent model (clusters in 48 dimensions
projected to 384), a stand-in for real sentence embeddings, whose intrinsic
dimension is similarly low.

    python bench/memory.py [--sizes 10000,100000] [--full] [--queries 200] [--no-postgres] [--json]
        [--no-sqlite] [--ef-sweep 40,64,100] [--build-workers 1] [--build-memory 4GB]

From 500,000 memories on (``--full``) the PostgreSQL index is built once after the rows are in,
and its build time is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from puppet_engine.clock import VirtualClock
from puppet_engine.memory import HashingEmbedder, Memory, RankingWeights, SQLiteStore
from puppet_engine.memory.store import SQLMemoryStore
from puppet_engine.storage import Database

DIM = 384
K = 10
AGENT = "bench-agent"
BATCH = 5000
TARGETS = {"sqlite": 1.2, "postgres": 1.5}


def make_data(
    n: int, queries: int, seed: int = 11
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent, clusters = 48, max(16, n // 200)
    projection = rng.normal(size=(latent, DIM)).astype(np.float32)
    centers = rng.normal(size=(clusters, latent)).astype(np.float32)
    z = centers[rng.integers(0, clusters, n)] + 0.7 * rng.normal(size=(n, latent)).astype(
        np.float32
    )
    vectors = z @ projection + 0.3 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picks = rng.integers(0, n, queries)
    q = vectors[picks] + 0.05 * rng.normal(size=(queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    importance = rng.uniform(0, 1, n).astype(np.float32)
    ages = rng.uniform(0, 90 * 86400, n)
    return vectors.astype(np.float32), q.astype(np.float32), importance, ages


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(samples, 50) * 1000, "p99_ms": pct(samples, 99) * 1000}


def exact_top(vectors: np.ndarray, q: np.ndarray, k: int = K) -> np.ndarray:
    """The baseline search: exact cosine top k."""
    scores = vectors @ q
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def exact_ranked(
    vectors: np.ndarray, bonus: np.ndarray, q: np.ndarray, weights: RankingWeights, k: int = K
) -> np.ndarray:
    """The stores' definition, computed exactly: the nearest candidates, re-ranked with the bonus."""
    candidates = exact_top(vectors, q, weights.candidates(k))
    scores = vectors[candidates] @ q + bonus[candidates]
    return candidates[np.argsort(-scores)[:k]]


def recall(found: list[set[int]], truth: list[set[int]]) -> float:
    return sum(len(f & t) for f, t in zip(found, truth, strict=True)) / sum(len(t) for t in truth)


def embedding_cost() -> dict[str, Any]:
    """Per-text cost of computing the vectors the rest of the benchmark takes as given."""
    texts = [
        f"memory {i}: bought SOL at {i % 97} dollars and posted about the validator"
        for i in range(2000)
    ]
    out: dict[str, Any] = {}
    start = time.perf_counter()
    HashingEmbedder().embed_sync(texts)
    out["hashing_ms_per_text"] = (time.perf_counter() - start) * 1000 / len(texts)
    from puppet_engine.memory.embeddings import LocalEmbedder, local_embeddings_available

    if local_embeddings_available():
        local = LocalEmbedder()
        local.load()
        local._encode(texts[:64])  # warm-up
        start = time.perf_counter()
        local._encode(texts[:512])
        out["local_minilm_ms_per_text"] = (time.perf_counter() - start) * 1000 / 512
    return out


async def fill(
    store: SQLMemoryStore, vectors: np.ndarray, importance: np.ndarray, created: np.ndarray
) -> tuple[list[str], float]:
    ids: list[str] = []
    start = time.perf_counter()
    for lo in range(0, len(vectors), BATCH):
        batch = [
            Memory(
                f"memory {i}",
                kind="post",
                importance=float(importance[i]),
                created_at=float(created[i]),
                id=f"m{i:08d}",
                embedding=vectors[i],
            )
            for i in range(lo, min(lo + BATCH, len(vectors)))
        ]
        ids += await store.add_many(AGENT, batch)
    return ids, len(vectors) / (time.perf_counter() - start)


async def bench_sqlite(
    n: int, data: tuple[np.ndarray, ...], weights: RankingWeights, clock: VirtualClock
) -> dict[str, Any]:
    vectors, queries, importance, ages = data
    created = clock.now() - ages
    tmp = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    db = Database(f"sqlite:///{tmp / 'bench.db'}")
    try:
        await db.migrate()
        store = SQLiteStore(db, HashingEmbedder(), clock=clock, weights=weights)
        _, insert_rate = await fill(store, vectors, importance, created)
        start = time.perf_counter()
        await SQLiteStore(db, HashingEmbedder(), clock=clock, weights=weights).search_vector(
            AGENT, queries[0]
        )
        load_s = time.perf_counter() - start  # a fresh store loads the matrix from disk
        matrix = vectors.copy()
        for q in queries[:5]:  # warm both
            exact_top(matrix, q)
            await store.search_vector(AGENT, q)
        samples, base, found = [], [], []
        for q in queries:  # interleaved, so both see the same machine load
            t = time.perf_counter()
            exact_top(matrix, q)
            base.append(time.perf_counter() - t)
            t = time.perf_counter()
            hits = await store.search_vector(AGENT, q, limit=K)
            samples.append(time.perf_counter() - t)
            found.append({int(h.memory.id[1:]) for h in hits if h.memory.id})
        bonus = weights.bonus(importance, created, clock.now())
        truth = [set(exact_ranked(vectors, bonus, q, weights).tolist()) for q in queries]
        return {
            "store": "sqlite",
            "n": n,
            "insert_per_s": insert_rate,
            "index_load_s": load_s,
            "search": latency(samples),
            "baseline_numpy": latency(base),
            "ratio_p50": pct(samples, 50) / pct(base, 50),
            "recall_at_10": recall(found, truth),
        }
    finally:
        await db.close()
        shutil.rmtree(tmp, ignore_errors=True)


INDEX_384 = f"ix_memories_embedding_vec_{DIM}"
#: From this size on the HNSW index is dropped while filling and built once after (timed):
#: inserting a million rows one by one into the graph would take hours.
BULK_BUILD_FROM = 500_000


async def build_index(url: str, indexdef: str, workers: int, work_mem: str) -> float:
    """Build the HNSW index as one statement, printing its progress; seconds taken."""
    import asyncpg

    conn = await asyncpg.connect(url)
    watcher = await asyncpg.connect(url)
    try:
        await conn.execute(f"SET maintenance_work_mem = '{work_mem}'")
        await conn.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
        start = time.perf_counter()
        build = asyncio.create_task(conn.execute(indexdef))
        while not build.done():
            await asyncio.wait([build], timeout=60)
            if build.done():
                break
            row = await watcher.fetchrow(
                "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total "
                "FROM pg_stat_progress_create_index"
            )
            elapsed = time.perf_counter() - start
            print(f"  index build {elapsed / 60:5.1f} min: {dict(row) if row else 'no progress row'}",
                  flush=True)
        await build
        return time.perf_counter() - start
    finally:
        await watcher.close()
        await conn.close()


async def timed_pairs(
    raw: Any,
    sql: str,
    store: SQLMemoryStore,
    queries: np.ndarray,
    legacy: tuple[Any, str] | None = None,
) -> dict[str, Any]:
    """Raw pgvector and the store, query by query (interleaved: both see the same machine load).

    ``sql`` takes the query in pgvector's binary format (its asyncpg codec); ``legacy``, when
    given, is another connection and a statement taking it as a ``real[]`` cast to ``vector``
    (the baseline of the earlier rounds). The order rotates from query to query: on a loaded
    machine the last of a burst is slower. Each path has a connection (a backend) of its own:
    one serving two paths runs two queries in three and stays warmer than the store's.
    """
    out: dict[str, Any] = {"base": [], "raw_found": [], "legacy": [], "samples": [], "found": []}

    async def base(q: np.ndarray) -> None:
        rows = await raw.fetch(sql, AGENT, q)
        out["raw_found"].append({int(r["id"][1:]) for r in rows})

    async def searched(q: np.ndarray) -> None:
        hits = await store.search_vector(AGENT, q, limit=K)
        out["found"].append({int(h.memory.id[1:]) for h in hits if h.memory.id})

    paths = [("base", base), ("samples", searched)]
    if legacy is not None:
        legacy_conn, legacy_sql = legacy

        async def legacy_path(q: np.ndarray) -> None:
            await legacy_conn.fetch(legacy_sql, AGENT, q.tolist())

        paths.append(("legacy", legacy_path))
    for q in queries[:5]:  # warm every path
        for _, run in paths:
            await run(q)
    for key in out:
        out[key].clear()
    for i, q in enumerate(queries):
        for key, run in paths[i % len(paths):] + paths[: i % len(paths)]:
            t = time.perf_counter()
            await run(q)
            out[key].append(time.perf_counter() - t)
    return out


async def bench_postgres(
    url: str,
    n: int,
    data: tuple[np.ndarray, ...],
    weights: RankingWeights,
    clock: VirtualClock,
    args: argparse.Namespace,
) -> dict[str, Any]:
    import asyncpg
    from pgvector.asyncpg import register_vector

    from puppet_engine.memory.postgres import PostgresStore

    vectors, queries, importance, ages = data
    created = clock.now() - ages
    db = Database(url)
    await db.migrate()
    raw = await asyncpg.connect(url)
    await register_vector(raw)
    legacy_raw = await asyncpg.connect(url)
    stores: list[SQLMemoryStore] = []
    indexdef = await raw.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = $1", INDEX_384)
    bulk = n >= BULK_BUILD_FROM or args.bulk_build
    out: dict[str, Any] = {"store": "postgres", "n": n}
    try:
        await raw.execute("DELETE FROM memories WHERE agent_id = $1", AGENT)
        if bulk:
            await raw.execute(f"DROP INDEX {INDEX_384}")
        store = PostgresStore(db, HashingEmbedder(), clock=clock, weights=weights)
        stores.append(store)
        _, out["insert_per_s"] = await fill(store, vectors, importance, created)
        if bulk:
            print(f"  filled {n:,} rows at {out['insert_per_s']:,.0f}/s (no index); building it", flush=True)
            out["index_build_s"] = await build_index(url, indexdef, args.build_workers, args.build_memory)
        await raw.execute("VACUUM ANALYZE memories")
        sql = (
            f"SELECT id FROM memories WHERE agent_id = $1 AND dim = {DIM} "
            f"ORDER BY embedding_vec::vector({DIM}) <=> $2::vector({DIM}) LIMIT {K}"
        )
        legacy_sql = sql.replace(f"$2::vector({DIM})", f"$2::real[]::vector({DIM})")
        plan = "\n".join(r[0] for r in await raw.fetch("EXPLAIN " + sql, AGENT, queries[0]))
        run = await timed_pairs(raw, sql, store, queries, (legacy_raw, legacy_sql))
        samples, base = run["samples"], run["base"]
        bonus = weights.bonus(importance, created, clock.now())
        truth_ranked = [set(exact_ranked(vectors, bonus, q, weights).tolist()) for q in queries]
        truth_cosine = [set(exact_top(vectors, q).tolist()) for q in queries]
        out.update({
            "search": latency(samples),
            "baseline_raw_pgvector": latency(base),
            "ratio_p50": pct(samples, 50) / pct(base, 50),
            "baseline_raw_pgvector_real_array": latency(run["legacy"]),
            "ratio_p50_vs_real_array": pct(samples, 50) / pct(run["legacy"], 50),
            "recall_at_10": recall(run["found"], truth_ranked),
            "raw_pgvector_recall_at_10": recall(run["raw_found"], truth_cosine),
            "uses_hnsw_index": INDEX_384 in plan,
        })
        sweep: list[dict[str, Any]] = []
        for ef in [int(e) for e in args.ef_sweep.split(",") if e]:
            swept = PostgresStore(db, HashingEmbedder(), clock=clock, weights=weights, ef_search=ef)
            stores.append(swept)
            # The raw baseline stays at pgvector's default ef_search, as in the main row.
            run = await timed_pairs(raw, sql, swept, queries)
            sweep.append({
                "ef_search": ef,
                "search": latency(run["samples"]),
                "ratio_p50": pct(run["samples"], 50) / pct(run["base"], 50),
                "recall_at_10": recall(run["found"], truth_ranked),
            })
            if not args.json:
                print(f"  ef_search {ef:>4}: p50 {sweep[-1]['search']['p50_ms']:6.2f} ms  "
                      f"p99 {sweep[-1]['search']['p99_ms']:6.2f} ms  ratio {sweep[-1]['ratio_p50']:.2f}x  "
                      f"recall@10 {sweep[-1]['recall_at_10']:.3f}", flush=True)
        if sweep:
            out["ef_sweep"] = sweep
        return out
    finally:
        for opened in stores:
            await opened.close()
        await raw.execute("DELETE FROM memories WHERE agent_id = $1", AGENT)
        if indexdef is not None:
            await raw.execute(indexdef.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        await raw.close()
        await legacy_raw.close()
        await db.close()


def start_postgres() -> tuple[str, Any] | None:
    try:
        import pgserver
    except ImportError:
        return None
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    server = pgserver.get_server(root / "data", cleanup_mode="delete")
    server.psql("CREATE DATABASE bench;")
    return server.get_uri("bench"), server


def report(result: dict[str, Any]) -> str:
    base_key = "baseline_numpy" if result["store"] == "sqlite" else "baseline_raw_pgvector"
    target = TARGETS[result["store"]]
    verdict = "ok" if result["ratio_p50"] <= target else "over target"
    line = (
        f"{result['store']:8} n={result['n']:>8,}  insert {result['insert_per_s']:>8,.0f}/s  "
        f"search p50 {result['search']['p50_ms']:6.2f} ms p99 {result['search']['p99_ms']:6.2f} ms  "
        f"baseline p50 {result[base_key]['p50_ms']:6.2f} ms p99 {result[base_key]['p99_ms']:6.2f} ms  "
        f"ratio {result['ratio_p50']:.2f}x (target <= {target}x, {verdict})  recall@10 {result['recall_at_10']:.3f}"
    )
    if "ratio_p50_vs_real_array" in result:
        line += (f"  (vs a real[] query: p50 {result['baseline_raw_pgvector_real_array']['p50_ms']:.2f} ms, "
                 f"ratio {result['ratio_p50_vs_real_array']:.2f}x)")
    if "raw_pgvector_recall_at_10" in result:
        line += f"  raw recall@10 {result['raw_pgvector_recall_at_10']:.3f}  hnsw={result['uses_hnsw_index']}"
    if "index_build_s" in result:
        line += f"  index build {result['index_build_s']:.0f} s"
    if "index_load_s" in result:
        line += f"  index load {result['index_load_s']:.2f} s"
    return line


async def main(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    weights = RankingWeights()
    results: list[dict[str, Any]] = []
    costs = embedding_cost()
    if not args.json:
        print(
            "embedding cost per text: " + ", ".join(f"{k} {v:.3f} ms" for k, v in costs.items()),
            flush=True,
        )
    pg = (
        None
        if args.no_postgres
        else (args.postgres_url and (args.postgres_url, None)) or start_postgres()
    )
    try:
        for n in sizes:
            data = make_data(n, args.queries)
            clock = VirtualClock()
            if not args.no_sqlite:
                results.append(await bench_sqlite(n, data, weights, clock))
                if not args.json:
                    print(report(results[-1]), flush=True)
            if pg is not None:
                results.append(await bench_postgres(pg[0], n, data, weights, clock, args))
                if not args.json:
                    print(report(results[-1]), flush=True)
    finally:
        if pg is not None and pg[1] is not None:
            pg[1].cleanup()
    if args.json:
        print(json.dumps({"embedding_cost": costs, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--full", action="store_true", help="add 1,000,000 memories")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--ef-sweep", default="", help="PostgreSQL: also measure the store at these ef_search values (e.g. 40,64,100)"
    )
    parser.add_argument("--bulk-build", action="store_true",
                        help="PostgreSQL: build the index after filling at every size (always from 500,000)")
    parser.add_argument("--build-workers", type=int, default=1,
                        help="parallel workers for the bulk HNSW build (1,000,000)")
    parser.add_argument("--build-memory", default="4GB", help="maintenance_work_mem for the bulk HNSW build")
    parser.add_argument(
        "--postgres-url", default=None, help="use this PostgreSQL instead of starting one"
    )
    parser.add_argument("--json", action="store_true")
    known, _ = parser.parse_known_args()  # make bench passes the same flags to every benchmark
    sys.exit(asyncio.run(main(known)))
