"""``elsst-bench leaderboard --verify``: every committed number must re-score from its stored rankings.

For each entry, in file order: every field's presence, type and consistency (:func:`.entry.check_shape`, the
same check ``submit`` makes of what it writes), the benchmark's dataset, split and primary metric, the file name,
the stored rankings (every split query, and each query's top 10 through the per-query checks of ``submit``,
:func:`.validate.check_ranked`), their content hash and the entry id, and ``trainable_params`` re-counted from the
base model, adapter and options the entry states (:func:`.params.check_trainable_params`, the check ``submit``
makes of a run's config.json; each base model is built once, on the meta device); then, for each entry, every
metric of every task and language re-computed with ``score_rankings`` against the benchmark's qrels (to 1e-9).
Then the rendered ``README.md`` and ``index.html`` must be byte-identical to a fresh rendering. The first failure
raises a one-line :class:`~elsst_bench.errors.DataError` naming the entry; so does a base model that is not on
this machine (the count cannot be made without it). An empty board passes without loading any dataset.

Name, options and date are covered by neither the entry id nor the rankings: they are checked for type and
consistency (see :mod:`.entry`), and the pages must show exactly what the entries hold. The one
``trainable_params`` that cannot be re-counted is that of a method elsst-bench does not implement (a submitter's
own): it is taken as stated, and the summary line says how many entries that is.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import store
from .benchmark import DEFAULT_LEADERBOARD, benchmark_dataset, read_benchmark, thesaurus
from .entry import decode, entry_id, filename, first_difference, score
from .params import Bases, check_trainable_params


def verify(leaderboard=DEFAULT_LEADERBOARD, dataset=None) -> str:
    """Raise on the first mismatch; return a one-line summary."""
    leaderboard = Path(leaderboard)
    bench = read_benchmark(leaderboard)
    entries = store.load_entries(leaderboard)
    ds = benchmark_dataset(bench, dataset) if entries else None
    seen: dict[str, Path] = {}
    bases = Bases()  # each base model built once (the board has two)
    uncounted = 0  # entries of methods elsst-bench does not implement: trainable_params taken as stated
    decoded = []
    for path, entry in entries:
        where = str(path)
        if entry["dataset_fingerprint"] != bench.fingerprint or entry["split"] != bench.split:
            raise DataError(f"{where} was scored on {str(entry['dataset_fingerprint'])[:12]}…/{entry['split']}, "
                            f"not the benchmark's {bench.fingerprint[:12]}…/{bench.split}")
        if (entry["dataset_id"], entry["primary_metric"]) != (bench.dataset_id, bench.primary_metric):
            raise DataError(f"{where} names dataset {entry['dataset_id']!r} and primary metric "
                            f"{entry['primary_metric']!r}, not the benchmark's {bench.dataset_id!r} and "
                            f"{bench.primary_metric!r}")
        if path.name != filename(entry):
            raise DataError(f"{where} should be named {filename(entry)}")
        if entry["id"] in seen:
            raise DataError(f"{where} duplicates {seen[entry['id']]} (same id {entry['id']})")
        seen[entry["id"]] = path
        rows, refs, sha = decode(entry, bench, ds, where)
        if sha != entry["rankings"].get("sha256"):
            raise DataError(f"{where}: the stored rankings hash to {sha[:12]}…, not the recorded "
                            f"{str(entry['rankings'].get('sha256'))[:12]}…")
        expected_id = entry_id(entry["model"], entry["adapter"], entry["seed"], sha)
        if entry["id"] != expected_id:
            raise DataError(f"{where}: id {entry['id']} does not match its content ({expected_id})")
        uncounted += not check_trainable_params(entry, where, bases).checked
        decoded.append((path, entry, rows, refs))
    for path, entry, rows, refs in decoded:  # the cheap checks of every entry first, then the scoring
        difference = first_difference(entry["scores"], score(rows, refs, thesaurus(ds)))
        if difference:
            raise DataError(f"{path}: {difference}")
    for name, content in store.rendered(bench, [e for _, e in entries]).items():
        page = leaderboard / name
        if not page.is_file() or page.read_bytes() != content:
            raise DataError(f"{page} is out of date with {leaderboard / store.ENTRIES}; run "
                            f"`elsst-bench leaderboard --render --leaderboard {leaderboard}`")
    pages = f"{store.README} and {store.PAGE} up to date"
    if not entries:
        return f"{leaderboard}: no entries yet; {pages}"
    noun = "entry" if len(entries) == 1 else "entries"
    counted = "trainable_params re-counted"
    if uncounted:
        counted += (f" but for {uncounted} {'entry' if uncounted == 1 else 'entries'} of methods elsst-bench does "
                    "not implement (taken as stated)")
    return (f"{leaderboard}: {len(entries)} {noun} re-scored from their rankings against {bench.dataset_id} "
            f"({bench.fingerprint[:12]}…, {bench.split}): all numbers match, {counted}; {pages}")
