"""Stored rankings: the top 10 of every query as pool indices — small, exact for every metric, deterministic.

**Why the top 10 is enough.** Every metric of the benchmark cuts at 10 or less: MRR@10, Recall@1/3/5/10,
nDCG@3/@10 (binary), nDCG@10 on the graded qrels (primary) and WuP@1. :func:`~elsst_bench.evaluation.metrics.
score_rankings` reads only the first ``CUTOFF = 10`` candidates of a ranking, so scores re-computed from the
stored top 10 equal those of the full top-100 run file exactly (``tests/test_leaderboard_store.py`` checks it).

**Format** ``pool-index-top10/v1``, per task and language::

    {"queries": n, "data": base64(zlib(level 9, little-endian uint16[n × 10]))}

Row ``i`` is the ``i``-th query of the benchmark's split in ascending query-id order (every split query must be
ranked, so the ids are implied by the benchmark); its 10 values are the ranked concepts, best first, as indices
into the task's pool sorted by concept id (uint32 instead of uint16 when a pool exceeds 65,535 concepts;
``"dtype"`` says which). An English entry for all tasks (3 tasks, 1,361 queries) is about 35 KB.

**Content hash** (``rankings.sha256``, part of the entry id): sha256 over the lines
``task \\t lang \\t query id \\t concept_1 … concept_10 \\n`` sorted by task, language and query id — concept
ids, not indices, so the hash does not depend on the encoding.
"""

from __future__ import annotations

import base64
import hashlib
import zlib

import numpy as np

from ..errors import DataError
from ..evaluation.metrics import CUTOFF

FORMAT = "pool-index-top10/v1"
TOP = CUTOFF  # 10


def dtype_for(pool_size: int) -> str:
    return "<u2" if pool_size <= np.iinfo(np.uint16).max + 1 else "<u4"


def encode_rows(rows: np.ndarray, pool_size: int) -> dict:
    """``rows``: (n, 10) pool indices -> ``{"queries", "dtype", "data"}``."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != TOP or (rows.size and (rows.min() < 0 or rows.max() >= pool_size)):
        raise ValueError(f"expected (n, {TOP}) pool indices below {pool_size}, got shape {rows.shape}")
    dtype = dtype_for(pool_size)
    data = zlib.compress(np.ascontiguousarray(rows, dtype=dtype).tobytes(), 9)
    return {"queries": int(rows.shape[0]), "dtype": dtype, "data": base64.b64encode(data).decode("ascii")}


def decode_rows(blob: dict, where: str) -> np.ndarray:
    """The inverse of :func:`encode_rows`, with one-line errors naming ``where``. Only the encoding is checked
    here; what the rows may hold (pool rows, no concept twice, …) is :func:`.validate.check_ranked`'s."""
    try:
        dtype = np.dtype(blob["dtype"])
        raw = zlib.decompress(base64.b64decode(blob["data"], validate=True))
        n = int(blob["queries"])
    except (KeyError, TypeError, ValueError, zlib.error) as err:
        raise DataError(f"{where}: the stored rankings cannot be decoded ({type(err).__name__}: {err})") from err
    if dtype.kind != "u" or len(raw) != n * TOP * dtype.itemsize:
        raise DataError(f"{where}: the stored rankings hold {len(raw)} bytes, not {n} queries × {TOP} × {dtype}")
    return np.frombuffer(raw, dtype=dtype).reshape(n, TOP).astype(np.int64)


def content_sha256(parts: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...], np.ndarray]]) -> str:
    """``{(task, lang): (qids, pool, rows)}`` -> sha256 of the canonical text (see the module docstring)."""
    digest = hashlib.sha256()
    for task, lang in sorted(parts):
        qids, pool, rows = parts[(task, lang)]
        names = np.asarray(pool, dtype=object)[np.asarray(rows, dtype=np.int64)].tolist()  # one C-level gather
        digest.update("".join(f"{task}\t{lang}\t{qid}\t{' '.join(ranked)}\n"
                              for qid, ranked in zip(qids, names)).encode("utf-8"))
    return digest.hexdigest()
