"""Batched encoding of de-duplicated texts, with an on-disk embedding cache.

Every text is encoded once per *role signature*: a query and a document with the same text share one
embedding when the model encodes both roles the same way (same prompt, no task router), which is the case
for all-MiniLM-L6-v2. So the English pool, which is shared by the broader, synonym, definition and
crosslingual tasks (and equals the broader queries), is encoded once per evaluation.

Embeddings are L2-normalised (``normalize_embeddings=True``), so inner product = cosine similarity.

Cache layout (``$ELSST_BENCH_CACHE`` or ``./.cache/elsst-bench``)::

    <cache>/<model key>/<dataset fingerprint[:32]>/<shard>.npz     keys: S16 digests, vectors: float32

The model key is a sha256 over the canonical JSON of the model identity (name + weights sha256, plus the
adapter's file hash for a training run); an identity without a weights hash (a hub id, an in-memory model)
is not cached. A text's key is ``blake2b-128(role signature + "\\0" + text)``. Each evaluation that
encodes something appends one shard, written to a temporary file and ``os.replace``-d into place, so a
reader never sees half a shard; many shards are merged into one. A shard that cannot be read is ignored
(the texts are simply encoded again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..models import role_prompt

MAX_SHARDS = 16


def default_cache_dir() -> Path:
    return Path(os.environ.get("ELSST_BENCH_CACHE", ".cache/elsst-bench"))


def model_cache_key(identity: dict | None, extra: str | None = None) -> str | None:
    """A content address for a model (+ ``extra``, e.g. an adapter hash), or None without a weights hash."""
    if not identity or not identity.get("sha256"):
        return None
    canonical = json.dumps({"identity": {k: v for k, v in identity.items() if k != "location"}, "extra": extra},
                           sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def role_signature(model, role: str) -> str:
    """What makes a ``role`` ("query" or "document") encoding differ from a plain one for this model."""
    own = getattr(model, "role_signature", None)
    if callable(own):  # a model that knows it without being loaded (see loading.LazySentenceTransformer)
        return own(role)
    try:
        routed = any(type(module).__name__ == "Router" for module in model)
    except TypeError:  # not an nn.Sequential-like model (e.g. a test double)
        routed = False
    prompt = role_prompt(model, role)
    return f"{role}|{prompt}" if routed else prompt


def text_key(signature: str, text: str) -> bytes:
    return hashlib.blake2b(f"{signature}\0{text}".encode(), digest_size=16).digest()


def _encode_fn(model, role: str):
    return getattr(model, f"encode_{role}", None) or model.encode


def encode_role(model, texts: list[str], role: str, batch_size: int = 128) -> np.ndarray:
    """L2-normalised float32 embeddings (n, d) of ``texts`` in ``role`` ("query" or "document"): the one way every
    text is encoded (evaluation, dev evaluation, the suggester)."""
    emb = _encode_fn(model, role)(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                                  show_progress_bar=False)
    return np.asarray(emb, dtype=np.float32)


class EmbeddingCache:
    """Embeddings of one model on one dataset, stored as append-only ``.npz`` shards."""

    def __init__(self, root: str | os.PathLike, model_key: str, fingerprint: str):
        self.dir = Path(root) / model_key / fingerprint[:32]

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("*.npz")) if self.dir.is_dir() else []

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All cached ``(keys (n,) S16, vectors (n, d) float32)``."""
        keys, vectors = [], []
        for shard in self._shards():
            try:
                with np.load(shard, allow_pickle=False) as data:
                    k, v = data["keys"], data["vectors"]
            except Exception:  # truncated by a crash, removed by a concurrent merge: re-encode instead
                continue
            if len(k) == len(v) and (not vectors or v.shape[1] == vectors[0].shape[1]):
                keys.append(k)
                vectors.append(v)
        if not keys:
            return np.empty(0, dtype="S16"), np.empty((0, 0), dtype=np.float32)
        return np.concatenate(keys), np.concatenate(vectors)

    def _write(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.blake2b(keys.tobytes(), digest_size=12).hexdigest()
        fd, tmp = tempfile.mkstemp(prefix=".shard.", suffix=".npz", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, keys=keys, vectors=vectors)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is a plain shared directory
            os.replace(tmp, self.dir / f"{name}.npz")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return self.dir / f"{name}.npz"

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Append one shard; merge all shards into one when there are more than ``MAX_SHARDS``."""
        if not len(keys):
            return
        self._write(np.asarray(keys, dtype="S16"), np.ascontiguousarray(vectors, dtype=np.float32))
        shards = self._shards()
        if len(shards) > MAX_SHARDS:
            all_keys, all_vectors = self.load()
            _, first = np.unique(all_keys, return_index=True)
            merged = self._write(all_keys[first], all_vectors[first])
            for shard in shards:
                if shard != merged:
                    with contextlib.suppress(FileNotFoundError):
                        shard.unlink()


@dataclass
class EncodeStats:
    texts: int = 0  # distinct (role signature, text) pairs requested
    from_cache: int = 0
    encoded: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"texts": self.texts, "from_cache": self.from_cache, "encoded": self.encoded,
                "seconds": round(self.seconds, 3)}


@dataclass
class EmbeddingTable:
    """Collects texts from every task first, then encodes the missing ones in one batched pass.

    ``rows = table.add(texts, "document")`` returns row numbers; after :meth:`encode`,
    ``table.vectors[rows]`` are the L2-normalised embeddings.
    """

    model: object
    keys: dict[bytes, int] = field(default_factory=dict)
    items: list[tuple[str, str]] = field(default_factory=list)  # (role, text) per row
    vectors: np.ndarray | None = None
    stats: EncodeStats = field(default_factory=EncodeStats)

    def __post_init__(self):
        self._signatures = {role: role_signature(self.model, role) for role in ("query", "document")}

    def add(self, texts, role: str) -> np.ndarray:
        signature = self._signatures[role]
        rows = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            key = text_key(signature, text)
            row = self.keys.get(key)
            if row is None:
                row = self.keys[key] = len(self.items)
                self.items.append((role, text))
            rows[i] = row
        return rows

    def encode(self, *, batch_size: int = 128, cache: EmbeddingCache | None = None, show_progress: bool = False,
               desc: str = "encoding") -> EncodeStats:
        import time

        start = time.perf_counter()
        keys = np.array(list(self.keys), dtype="S16")
        n = len(self.items)
        vectors = None
        missing = np.arange(n)
        if cache is not None and n:
            cached_keys, cached_vectors = cache.load()
            if len(cached_keys):
                order = np.argsort(cached_keys)
                pos = np.searchsorted(cached_keys[order], keys)
                pos = np.minimum(pos, len(order) - 1)
                hit = cached_keys[order][pos] == keys
                vectors = np.zeros((n, cached_vectors.shape[1]), dtype=np.float32)
                vectors[hit] = cached_vectors[order[pos[hit]]]
                missing = np.flatnonzero(~hit)
        if len(missing):
            fresh = self._encode_rows(missing, batch_size, show_progress, desc)
            if vectors is None:
                vectors = np.zeros((n, fresh.shape[1]), dtype=np.float32)
            vectors[missing] = fresh
            if cache is not None:
                cache.add(keys[missing], fresh)
        self.vectors = vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)
        self.stats = EncodeStats(texts=n, from_cache=n - len(missing), encoded=len(missing),
                                 seconds=time.perf_counter() - start)
        return self.stats

    def _encode_rows(self, rows: np.ndarray, batch_size: int, show_progress: bool, desc: str) -> np.ndarray:
        """Encode rows longest first in chunks of a few batches (one progress bar over all texts)."""
        from tqdm import tqdm

        out: np.ndarray | None = None
        was_training = getattr(self.model, "training", False)
        chunk = max(batch_size * 4, 256)
        with tqdm(total=len(rows), desc=desc, unit="text", disable=not show_progress, leave=False) as bar:
            for role in ("query", "document"):
                role_rows = [r for r in rows.tolist() if self.items[r][0] == role]
                if not role_rows:
                    continue
                # Longest first, as sentence-transformers does inside one call: little padding per batch.
                role_rows.sort(key=lambda r: -len(self.items[r][1]))
                for start in range(0, len(role_rows), chunk):
                    part = role_rows[start:start + chunk]
                    emb = encode_role(self.model, [self.items[r][1] for r in part], role, batch_size)
                    if out is None:
                        out = np.zeros((len(self.items), emb.shape[1]), dtype=np.float32)
                    out[part] = emb
                    bar.update(len(part))
        if was_training and hasattr(self.model, "train"):
            self.model.train()  # SentenceTransformer.encode() leaves the model in eval mode
        assert out is not None
        return out[rows]
