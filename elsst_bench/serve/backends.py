"""Inference backends for serving: the merged fp32 torch model, or an int8 OpenVINO export of it.

- ``torch`` (default): the SentenceTransformer with the adapter merged, fp32. What every benchmark number uses.
- ``openvino``: the same merged model exported through sentence-transformers' OpenVINO backend (optimum-intel) and
  quantised to int8 by post-training static quantisation (NNCF through optimum-intel's ``OVQuantizer``, as
  sentence-transformers' ``export_static_quantized_openvino_model`` does), calibrated on ELSST texts from the
  prepared dataset instead of a hub dataset, so the export works offline. Built once per model into
  ``<cache>/serving/<model key>/openvino-int8/`` (atomically) and reused. Needs the ``serve-int8`` extra.
- ``onnx``: sentence-transformers' ONNX backend needs optimum-onnx, whose releases require transformers < 4.58;
  this project pins transformers 5.23, so the backend is refused with that reason rather than installed broken.

A backend other than torch changes the vectors, so its embedding-cache entries are kept apart (the backend's tag
is added to the cache key).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from ..errors import BenchError

BACKENDS = ("torch", "openvino", "onnx")
#: What a backend tag adds to the embedding-cache key and the export directory's name.
INT8_TAG = {"openvino": "openvino-int8"}
#: How many calibration texts the static quantisation sees (labels and definitions of train-split concepts).
CALIBRATION_TEXTS = 300
ONNX_REFUSAL = ("the onnx backend needs optimum-onnx, whose releases require transformers < 4.58, and this install "
                "pins transformers 5.23.0; use --backend openvino for int8 on a CPU")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise BenchError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "onnx":
        raise BenchError(ONNX_REFUSAL)
    if backend == "openvino":
        try:
            import openvino  # noqa: F401
            import optimum.intel  # noqa: F401
        except ImportError as err:
            raise BenchError("the openvino backend needs optimum-intel and openvino: pip install "
                             "'elsst-bench[serve-int8]'") from err
    return backend


def serving_model(model, backend: str, identity: dict, cache_extra: str | None, cache_dir: str | None,
                  calibration: list[str] | None = None):
    """``(model to encode with, embedding-cache extra)`` for ``backend``; ``model`` is the merged torch model."""
    if backend == "torch":
        return model, cache_extra
    from ..evaluation.encode import default_cache_dir, model_cache_key

    tag = INT8_TAG[backend]
    extra = f"{cache_extra or ''}|{tag}"
    key = model_cache_key(identity, cache_extra) or "uncached"
    target = Path(cache_dir or default_cache_dir()) / "serving" / key / tag
    if not (target / "openvino").is_dir():
        export_openvino_int8(model, target, calibration or [])
    return load_openvino(target), extra


def export_openvino_int8(model, target: Path, calibration: list[str]) -> Path:
    """Save ``model``, export it to OpenVINO IR and quantise it to int8 (static, calibrated on ``calibration``)
    into ``target`` (written in a temporary directory and renamed into place)."""
    from datasets import Dataset
    from optimum.intel.openvino import OVConfig, OVQuantizationConfig, OVQuantizer
    from sentence_transformers import SentenceTransformer

    if not calibration:
        raise BenchError("the int8 export needs calibration texts")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save(str(tmp))
        ov = SentenceTransformer(str(tmp), backend="openvino", device="cpu")  # exports openvino/openvino_model.xml
        ov.save(str(tmp))
        quantizer = OVQuantizer.from_pretrained(ov.transformers_model)
        tokenizer = ov.tokenizer
        texts = Dataset.from_dict({"text": calibration})
        features = texts.map(lambda rows: tokenizer(rows["text"], padding="max_length", max_length=128,
                                                    truncation=True), batched=True, remove_columns=["text"])
        quantizer.quantize(ov_config=OVConfig(quantization_config=OVQuantizationConfig()),
                           calibration_dataset=features, save_directory=str(tmp / "openvino-int8"))
        # Put the quantised IR where sentence-transformers looks for the OpenVINO model.
        shutil.rmtree(tmp / "openvino")
        (tmp / "openvino").mkdir()
        for name in ("openvino_model.xml", "openvino_model.bin"):
            shutil.move(str(tmp / "openvino-int8" / name), str(tmp / "openvino" / name))
        shutil.rmtree(tmp / "openvino-int8")
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(target)  # an unfinished export of our own (no openvino/ inside)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_openvino(directory: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(directory), backend="openvino", device="cpu")


def calibration_texts(dataset, languages: list[str], n: int = CALIBRATION_TEXTS) -> list[str]:
    """Up to ``n`` texts for calibration: train-split concepts' labels and definitions in the served languages."""
    from ..tasks import split_of

    th = dataset.thesaurus()
    texts: list[str] = []
    seed = dataset.manifest.get("seed", 0)
    ids = [cid for cid in th.live_ids if th[cid].labels and split_of(cid, seed) == "train"]
    for i, cid in enumerate(ids):
        concept = th[cid]
        lang = languages[i % len(languages)]
        text = concept.definitions.get(lang) if i % 3 == 0 else concept.labels.get(lang)
        if text:
            texts.append(" ".join(text.split()).lower())
        if len(texts) >= n:
            break
    return texts
