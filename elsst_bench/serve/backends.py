"""Inference backends for serving: the merged fp32 torch model, or a static int8 OpenVINO model made from it.

- ``torch`` (default): the SentenceTransformer with the adapter merged, fp32. What every benchmark number uses.
- ``openvino``: the merged model's transformer body (token ids → last hidden state) converted to OpenVINO IR with
  ``openvino.convert_model`` (traced from the torch module in memory) and quantised to int8 by NNCF's post-training
  static quantisation, ``nncf.quantize(..., model_type=TRANSFORMER)``: SmoothQuant, then int8 weights and
  FakeQuantize (int8) activations on every MatMul (the word-embedding table is stored in int8 too), ranges from
  min/max statistics of ``CALIBRATION_TEXTS`` ELSST texts (labels and definitions of train-split concepts of the
  prepared dataset, with the model's query and document prompts), then fast bias correction; softmax and layer
  norm stay in float. Nothing is downloaded. The IR replaces the transformer inside the same SentenceTransformer,
  so tokenisation, prompts, pooling and normalisation are the torch model's own. It runs on the OpenVINO CPU
  plugin with ``INFERENCE_PRECISION_HINT=f32`` (the non-quantised ops in fp32 on every CPU; the plugin's default
  on CPUs with bf16 units is bf16) and as many threads as torch has. Needs the ``serve-int8`` extra (openvino,
  nncf).

  This is what optimum-intel's ``OVQuantizer`` and sentence-transformers' ``export_static_quantized_openvino_model``
  do underneath; they are not used because no optimum-intel release works here: pip rejects every release from
  1.16 to 2.2 against this project's pins (2.2 requires transformers < 5.6 and huggingface-hub < 1.22, 1.27
  transformers < 4.58; installed are transformers 5.23.0 and huggingface-hub 2.4) and falls back to 1.15.0,
  which fails on import (it needs ``openvino.runtime``, removed in OpenVINO 2026.0).

  An export is keyed by the model's embedding-cache key and by a digest of the calibration texts and the
  OpenVINO and NNCF versions; it is written once into ``<cache>/serving/<model key>/openvino-int8-<digest>/``
  (built in a temporary directory, then renamed into place) and reused. A model without a cache key (no weights
  hash), or ``cache_dir=None``, is quantised in memory and nothing is written.
- ``onnx``: sentence-transformers' ONNX backend needs optimum-onnx, whose releases require transformers < 4.58;
  this project pins transformers 5.23, so the backend is refused with that reason rather than installed broken.

A backend other than torch changes the vectors, so its embedding-cache entries are kept apart (the backend's tag,
digest included, is added to the cache key).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..errors import BenchError

BACKENDS = ("torch", "openvino", "onnx")
#: What a backend tag adds to the embedding-cache key and the export directory's name (before the digest).
INT8_TAG = {"openvino": "openvino-int8"}
#: How many calibration texts the static quantisation sees (labels and definitions of train-split concepts).
CALIBRATION_TEXTS = 300
#: Bumped when the export recipe changes, so that an old export is not reused for a new recipe.
EXPORT_FORMAT = 1
IR_NAME = "openvino_model.xml"
EXPORT_RECORD = "export.json"
#: The tokenizer outputs the IR takes, in this order when present.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: Compile settings of the OpenVINO CPU plugin (the thread count is added from torch's).
OV_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
#: An int8 export is refused when, on a calibration text, its mean-pooled last hidden state has a smaller cosine
#: than this to the fp32 model's.
MIN_COSINE = 0.95
ONNX_REFUSAL = ("the onnx backend needs optimum-onnx, whose releases require transformers < 4.58, and this install "
                "pins transformers 5.23.0; use --backend openvino for int8 on a CPU")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise BenchError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "onnx":
        raise BenchError(ONNX_REFUSAL)
    if backend == "openvino":
        try:
            import nncf  # noqa: F401
            import openvino  # noqa: F401
        except ImportError as err:
            raise BenchError("the openvino backend needs openvino and nncf: pip install "
                             "'elsst-bench[serve-int8]'") from err
    return backend


def serving_model(model, backend: str, identity: dict, cache_extra: str | None, cache_dir: str | None,
                  calibration: list[str] | None = None):
    """``(model to encode with, embedding-cache extra)`` for ``backend``; ``model`` is the merged torch model (for
    openvino it is changed in place: its transformer is replaced by the int8 IR)."""
    if backend == "torch":
        return model, cache_extra
    from ..evaluation.encode import model_cache_key

    check_backend(backend)
    if not calibration:
        raise BenchError("the int8 export needs calibration texts")
    tag = f"{INT8_TAG[backend]}-{export_digest(calibration)}"
    extra = f"{cache_extra or ''}|{tag}"
    key = model_cache_key(identity, cache_extra)
    if key is None or cache_dir is None:
        return load_openvino(model, quantize_openvino_int8(model, calibration)[0]), extra
    target = Path(cache_dir) / "serving" / key / tag
    if not is_export(target):
        export_openvino_int8(model, target, calibration)
    return load_openvino(model, target), extra


def export_digest(calibration: list[str]) -> str:
    """12 hex digits over what decides the int8 model besides the fp32 weights: recipe, versions, calibration."""
    import nncf
    import openvino

    h = hashlib.sha256(json.dumps({"format": EXPORT_FORMAT, "openvino": openvino.__version__,
                                   "nncf": nncf.__version__, "calibration": calibration}).encode())
    return h.hexdigest()[:12]


def is_export(directory: Path) -> bool:
    return (directory / IR_NAME).is_file() and (directory / EXPORT_RECORD).is_file()


def transformer_module(model):
    """The first module of a SentenceTransformer, checked to be a text transformer whose ``forward`` output
    ``last_hidden_state`` is what the next module pools."""
    try:
        modules = list(model)
    except TypeError:
        modules = []
    first = modules[0] if modules else None
    config = getattr(first, "modality_config", None) or {}
    text = config.get("text") or {}
    if (type(first).__name__ != "Transformer" or not hasattr(first, "model") or set(config) != {"text"}
            or text.get("method") != "forward" or text.get("method_output_name") != "last_hidden_state"
            or any(type(m).__name__ == "Router" for m in modules)):
        raise BenchError("the openvino backend serves a SentenceTransformer whose first module is a text "
                         "Transformer pooled from last_hidden_state; this model is not one")
    return first


def _body(inner):
    import torch

    class Body(torch.nn.Module):
        """The transformer as a function of the tokenizer's tensors alone, returning the last hidden state."""

        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                              **extra).last_hidden_state

    return Body().eval()


def _tokenize(model, texts: list[str], framework: str = "np") -> dict:
    enc = model.tokenizer(texts, padding=True, truncation=True, max_length=model.max_seq_length,
                          return_tensors=framework)
    return {name: enc[name] for name in INPUT_NAMES if name in enc}


def _pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    emb = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def quantize_openvino_int8(model, calibration: list[str]):
    """``(int8 ov.Model, record)``: ``model``'s transformer converted to IR and statically quantised (module
    docstring); the record counts the IR's operations and the check against the fp32 model."""
    import nncf
    import openvino as ov
    import torch

    from ..models import role_prompt

    if not calibration:
        raise BenchError("the int8 export needs calibration texts")
    transformer = transformer_module(model)
    if not isinstance(transformer.model, torch.nn.Module) or hasattr(transformer.model, "compiled"):
        raise BenchError("the model's transformer is already an OpenVINO model; quantise the torch model")
    body = _body(transformer.model)
    # Two texts of different lengths, so that the traced graph has padding and keeps the attention-mask path
    # (transformers drops the mask when a batch has no padding, a branch the trace would freeze).
    example = _tokenize(model, ["passage: a", "query: a longer example text with padding"], "pt")
    with torch.no_grad():
        fp32 = ov.convert_model(body, example_input=example)
    prompts = [role_prompt(model, "document"), role_prompt(model, "query")]
    items = [_tokenize(model, [prompts[i % 2] + text]) for i, text in enumerate(calibration)]
    int8 = nncf.quantize(fp32, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(items))
    counts: dict[str, int] = {}
    for op in int8.get_ops():
        counts[op.get_type_name()] = counts.get(op.get_type_name(), 0) + 1
    int8_weights = sum(1 for op in int8.get_ops() if op.get_type_name() == "Constant"
                       and op.get_element_type() in (ov.Type.i8, ov.Type.u8))
    if not counts.get("FakeQuantize") or not int8_weights:
        raise BenchError(f"the int8 export holds no quantised operation ({counts.get('FakeQuantize', 0)} "
                         f"FakeQuantize, {int8_weights} int8 weights)")
    # The quantised IR against the torch model on 32 calibration texts: a broken conversion is refused here.
    core = ov.Core()
    compiled = core.compile_model(int8, "CPU", compile_config())
    sample = [prompts[i % 2] + text for i, text in enumerate(calibration[:32])]
    feats = _tokenize(model, sample)
    with torch.no_grad():
        ref = body(**{k: torch.from_numpy(v) for k, v in feats.items()}).numpy()
    got = compiled(feats)[0]
    cosine = (_pooled(got, feats["attention_mask"]) * _pooled(ref, feats["attention_mask"])).sum(1)
    if float(cosine.min()) < MIN_COSINE:
        raise BenchError(f"the int8 export drifts from the fp32 model (pooled cosine {cosine.min():.4f} < "
                         f"{MIN_COSINE} on a calibration text)")
    record = {"format": EXPORT_FORMAT, "openvino": ov.__version__, "nncf": nncf.__version__,
              "quantization": "nncf.quantize static int8, model_type=TRANSFORMER",
              "calibration_texts": len(calibration),
              "calibration_sha256": hashlib.sha256(json.dumps(calibration).encode()).hexdigest(),
              "inputs": [p.get_any_name() for p in int8.inputs],
              "ops": {"FakeQuantize": counts.get("FakeQuantize", 0), "MatMul": counts.get("MatMul", 0),
                      "int8_weight_constants": int8_weights},
              "check": {"texts": len(sample), "min_cosine": round(float(cosine.min()), 6),
                        "mean_cosine": round(float(cosine.mean()), 6)}}
    return int8, record


def export_openvino_int8(model, target: Path, calibration: list[str]) -> Path:
    """Quantise ``model`` (:func:`quantize_openvino_int8`) and save the IR and ``export.json`` into ``target``
    (written in a temporary directory beside it and renamed into place). Returns ``target``."""
    import openvino as ov

    int8, record = quantize_openvino_int8(model, calibration)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        ov.save_model(int8, str(tmp / IR_NAME), compress_to_fp16=False)
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        try:
            tmp.rename(target)
        except OSError:
            if not is_export(target):  # not another process's finished export of the same model: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _stand_in_class():
    import torch

    class OpenVINOTransformer(torch.nn.Module):
        """Stands in for the Hugging Face model inside sentence-transformers' ``Transformer`` module: called with
        the tokenizer's tensors, it runs the compiled IR and returns ``{"last_hidden_state": tensor}``."""

        def __init__(self, compiled, config, names: list[str]):
            super().__init__()
            self.compiled = compiled
            self.config = config
            self.names = names
            self.device = torch.device("cpu")
            self._local = threading.local()

        def _request(self):
            request = getattr(self._local, "request", None)
            if request is None:  # one infer request per thread: a request is not safe to share
                request = self._local.request = self.compiled.create_infer_request()
            return request

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            request = self._request()
            request.infer({name: given[name].detach().cpu().numpy() for name in self.names})
            return {"last_hidden_state": torch.from_numpy(np.array(request.get_output_tensor(0).data))}

    return OpenVINOTransformer


def compile_config() -> dict:
    import torch

    return {**OV_CONFIG, "INFERENCE_NUM_THREADS": max(1, torch.get_num_threads())}


def load_openvino(model, source):
    """``model`` with its transformer replaced by the int8 IR ``source`` (an export directory or an ``ov.Model``),
    compiled for the CPU; the fp32 transformer is dropped. Returns ``model``."""
    import openvino as ov

    transformer = transformer_module(model)
    core = ov.Core()
    ir = core.read_model(str(Path(source) / IR_NAME)) if isinstance(source, (str, Path)) else source
    names = [p.get_any_name() for p in ir.inputs]
    compiled = core.compile_model(ir, "CPU", compile_config())
    transformer.model = _stand_in_class()(compiled, transformer.model.config, names)
    return model


def calibration_texts(dataset, languages: list[str], n: int = CALIBRATION_TEXTS) -> list[str]:
    """Up to ``n`` texts for calibration: train-split concepts' labels and definitions in ``languages``, normalised
    as the pools are."""
    from ..tasks import split_of
    from .core import normaliser

    th, norm = dataset.thesaurus(), normaliser(dataset)
    texts: list[str] = []
    seed = dataset.manifest.get("seed", 0)
    ids = [cid for cid in th.live_ids if th[cid].labels and split_of(cid, seed) == "train"]
    for i, cid in enumerate(ids):
        concept = th[cid]
        lang = languages[i % len(languages)]
        text = concept.definitions.get(lang) if i % 3 == 0 else concept.labels.get(lang)
        if text:
            texts.append(norm(text))
        if len(texts) >= n:
            break
    return texts
