"""``elsst-bench leaderboard --verify``: every committed number must re-score from its stored rankings.

For each entry, in file order: the shape and schema, the benchmark's dataset fingerprint, the file name, the
rankings' content hash and the entry id; then, for each entry, every metric of every task and language re-computed with
``score_rankings`` against the benchmark's qrels (to 1e-9). Then the rendered ``README.md`` and
``index.html`` must be byte-identical to a fresh rendering. The first failure raises a one-line
:class:`~elsst_bench.errors.DataError` naming the entry. An empty board passes without loading any dataset.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import store
from .benchmark import DEFAULT_LEADERBOARD, benchmark_dataset, read_benchmark
from .entry import decode, entry_id, filename, first_difference, rescore


def verify(leaderboard=DEFAULT_LEADERBOARD, dataset=None) -> str:
    """Raise on the first mismatch; return a one-line summary."""
    leaderboard = Path(leaderboard)
    bench = read_benchmark(leaderboard)
    entries = store.load_entries(leaderboard)
    ds = benchmark_dataset(bench, dataset) if entries else None
    seen: dict[str, Path] = {}
    for path, entry in entries:
        where = str(path)
        if entry["dataset_fingerprint"] != bench.fingerprint or entry["split"] != bench.split:
            raise DataError(f"{where} was scored on {str(entry['dataset_fingerprint'])[:12]}…/{entry['split']}, "
                            f"not the benchmark's {bench.fingerprint[:12]}…/{bench.split}")
        if path.name != filename(entry):
            raise DataError(f"{where} should be named {filename(entry)}")
        if entry["id"] in seen:
            raise DataError(f"{where} duplicates {seen[entry['id']]} (same id {entry['id']})")
        seen[entry["id"]] = path
        _, _, sha = decode(entry, bench, ds, where)
        if sha != entry["rankings"].get("sha256"):
            raise DataError(f"{where}: the stored rankings hash to {sha[:12]}…, not the recorded "
                            f"{str(entry['rankings'].get('sha256'))[:12]}…")
        expected_id = entry_id(entry["model"], entry["adapter"], entry["seed"], sha)
        if entry["id"] != expected_id:
            raise DataError(f"{where}: id {entry['id']} does not match its content ({expected_id})")
    for path, entry in entries:  # the cheap checks of every entry first, then the scoring
        difference = first_difference(entry["scores"], rescore(entry, bench, ds, str(path)))
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
    return (f"{leaderboard}: {len(entries)} {noun} re-scored from their rankings against {bench.dataset_id} "
            f"({bench.fingerprint[:12]}…, {bench.split}): all numbers match; {pages}")
