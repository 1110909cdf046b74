"""``elsst-bench sweep CONFIG``: a grid of ``train`` runs from a small TOML file, resumable and idempotent.

A sweep file names where runs go, an optional leaderboard, defaults, and blocks of runs::

    out = "results/runs"              # run directories: <out>/<id>
    leaderboard = "leaderboards"      # submit each run of a block with submit = true, then re-render

    [defaults]                        # any `train` option (TrainConfig field)
    languages = ["en"]

    [[runs]]
    id = "{adapter}-s{seed}"          # formatted with the run's resolved options (lists joined by "+")
    budget = "lora-r8"
    matrix = { seed = [0, 1, 2], adapter = ["lora", "orthogeolora"] }   # cartesian product, outer key first
    submit = true

A block may take its learning rate from earlier dev-only tuning runs instead of setting one::

    [[runs]]                          # the rate grid, seed 0, dev only (train --no-test)
    id = "tuning/{adapter}-lr{lr}"
    seed = 0
    test = false
    matrix = { adapter = ["lora"], lr = [3e-4, 1e-3, 3e-3] }

    [[runs]]                          # every seed at the rate with the best dev score
    id = "{adapter}-s{seed}"
    lr_from = "tuning/{adapter}-lr*"  # a glob over the ids of earlier runs, formatted with this run's values
    matrix = { adapter = ["lora"], seed = [0, 1, 2] }

The tuned rate is the recorded ``lr`` of the matching run with the highest ``best_dev_score`` (ties: the first
in file order); it is chosen when the run is reached, so the tuning runs must be complete by then.

Each planned run is, in order: skipped if its directory is complete and was trained with the same options
(different options are an error, never silently reused); resumed from its last checkpoint if it is
incomplete; trained otherwise. A submitted run leaves ``submitted.json`` (the leaderboard entry it became)
in its directory, so a second pass submits nothing twice and costs seconds. Paths are relative to the
current directory, like every other command. ``--shard K/N`` runs one part of the plan, so several processes
or machines run one grid together (:mod:`elsst_bench.shard`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
import os
import string
import time
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import atomic, runs
from .outputs import check_run_id
from .errors import BenchError
from .jsontypes import NAME_MAX, accepts, hint_name, is_line
from .training import TrainConfig

SUBMITTED = "submitted.json"
#: ``train`` options a sweep may set (TrainConfig fields minus the ones the sweep itself decides).
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("out", "run_id", "resume", "overwrite", "fail_at_step"))
BLOCK_KEYS = ("id", "matrix", "submit", "name", "lr_from")
TOP_KEYS = ("out", "leaderboard", "defaults", "runs")
#: The most runs a sweep file may plan: a matrix is a cartesian product, and a typo (``seed = range`` of 10⁴ by
#: four more keys) would otherwise expand for minutes into gigabytes before a single line is printed.
MAX_RUNS = 10_000


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its directory, its ``train`` configuration, and whether it goes on the board."""

    id: str
    config: TrainConfig
    submit: bool
    name: str | None = None
    lr_from: str | None = None  # glob over earlier run ids whose best dev score picks this run's lr

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out) / self.id


@dataclass(frozen=True)
class Plan:
    path: Path
    out: Path
    leaderboard: Path | None
    runs: tuple[PlannedRun, ...]


def _field(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return str(value)


def _check_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise BenchError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _check_template(template: str, where: str) -> None:
    """An id template names plain fields only (``{adapter}-s{seed}``): no attribute, index, conversion or format."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise BenchError(f"{where}: id {template!r} is not a valid template ({err})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise BenchError(f"{where}: id {template!r} uses {shown}; an id names plain fields only, "
                             "like {adapter}-s{seed}")


_HINTS = typing.get_type_hints(TrainConfig)


def _check_types(values: dict, where: str) -> None:
    """Every train option of a block has the type ``TrainConfig`` declares (``epochs = "three"`` is refused
    here, not by a child process in the middle of the sweep)."""
    for key, value in values.items():
        if key in _HINTS and not accepts(_HINTS[key], value):
            raise BenchError(f"{where}: {key} = {json.dumps(value)} should be {hint_name(_HINTS[key])}")


def _run_id(template: str, values: dict, where: str, pattern: bool = False) -> str:
    _check_template(template, where)
    fields = {k: _field(v) for k, v in values.items()}
    try:
        rid = template.format(**fields)
    except KeyError as err:
        raise BenchError(f"{where}: id {template!r} names {{{err.args[0]}}}, which this block does not set; "
                         f"set it or use one of {', '.join(sorted(fields))}") from None
    except (IndexError, ValueError) as err:
        raise BenchError(f"{where}: id {template!r} is not a valid template ({err})") from None
    try:
        return check_run_id(rid, pattern=pattern)
    except BenchError as err:
        raise BenchError(f"{where}: id {rid!r} must be a relative path of plain names inside out, without '..'") \
            from err


def _check_size(blocks: list, path: Path) -> None:
    """Refuse a plan of more than :data:`MAX_RUNS` runs before expanding it, saying how many it would be."""
    total = 0
    for block in blocks:
        matrix = block.get("matrix", {}) if isinstance(block, dict) else {}
        size = 1
        for values in (matrix.values() if isinstance(matrix, dict) else ()):
            size *= len(values) if isinstance(values, list) else 1
        total += size
    if total > MAX_RUNS:
        raise BenchError(f"{path} plans {total:,} runs, more than the {MAX_RUNS:,} a sweep may hold; "
                         "split it into several files or shorten its matrices")


def load_plan(path: str | Path) -> Plan:
    """Parse and expand a sweep file; every error names the file and the block."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"sweep file {path} does not exist") from None
    except IsADirectoryError:
        raise BenchError(f"sweep file {path} is a directory; pass a .toml file") from None
    except OSError as err:
        raise BenchError(f"sweep file {path} cannot be read ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BenchError(f"sweep file {path} is not valid TOML ({err})") from None
    _check_keys(doc, TOP_KEYS, str(path))
    if not isinstance(doc.get("out"), str) or not doc["out"]:
        raise BenchError(f"{path}: set out = \"DIR\", the directory that holds the sweep's run directories")
    board = doc.get("leaderboard")
    if board is not None and (not isinstance(board, str) or not board.strip()):
        raise BenchError(f"{path}: leaderboard must be a directory path (leave it out to submit nothing)")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise BenchError(f"{path}: [defaults] must be a table")
    _check_keys(defaults, TRAIN_KEYS, f"{path} [defaults]")
    blocks = doc.get("runs")
    if not isinstance(blocks, list) or not blocks:
        raise BenchError(f"{path}: no [[runs]] blocks")

    _check_size(blocks, path)
    planned: list[PlannedRun] = []
    seen: dict[str, str] = {}
    for i, block in enumerate(blocks, 1):
        where = f"{path} [[runs]] #{i}"
        _check_keys(block, BLOCK_KEYS + TRAIN_KEYS, where)
        if not isinstance(block.get("id"), str):
            raise BenchError(f"{where}: set id = \"...\", e.g. \"{{adapter}}-s{{seed}}\"")
        matrix = block.get("matrix", {})
        if not isinstance(matrix, dict):
            raise BenchError(f"{where}: matrix must be a table of lists")
        _check_keys(matrix, TRAIN_KEYS, f"{where} matrix")
        for key, values in matrix.items():
            if not isinstance(values, list) or not values:
                raise BenchError(f"{where}: matrix.{key} must be a non-empty list")
            if key in block:
                raise BenchError(f"{where}: {key} is set both in the block and in its matrix")
            for value in values:
                _check_types({key: value}, f"{where} matrix")
        fixed = {**defaults, **{k: v for k, v in block.items() if k in TRAIN_KEYS}}
        _check_types(fixed, where)
        name = block.get("name")
        if name is not None and not is_line(name, NAME_MAX):
            raise BenchError(f"{where}: name must be one line of 1 to {NAME_MAX} printable characters (the "
                             "leaderboard's display name), got " + repr(name)[:60])
        lr_from = block.get("lr_from")
        if lr_from is not None:
            if not isinstance(lr_from, str) or not lr_from:
                raise BenchError(f"{where}: lr_from must be a glob over earlier run ids, e.g. \"tuning/{{adapter}}-lr*\"")
            if "lr" in block or "lr" in matrix:
                raise BenchError(f"{where}: lr_from picks the learning rate; do not also set lr")
            fixed.pop("lr", None)  # a default rate does not apply to a tuned block
            if "{lr}" in block["id"]:
                raise BenchError(f"{where}: id {block['id']!r} names {{lr}}, which lr_from picks only when the run "
                                 "is reached")
        for combo in itertools.product(*matrix.values()):
            values = {**fixed, **dict(zip(matrix, combo))}
            if "adapter" not in values:
                raise BenchError(f"{where}: no adapter (set adapter = \"...\" or matrix.adapter)")
            rid = _run_id(block["id"], values, where)
            if rid in seen:
                raise BenchError(f"{where}: run id {rid!r} is also produced by {seen[rid]}; ids must be unique")
            seen[rid] = where
            try:
                config = TrainConfig(**values, out=doc["out"], run_id=rid)
            except TypeError as err:
                raise BenchError(f"{where}: {err}") from None
            if config.test is False and block.get("submit"):
                raise BenchError(f"{where}: a dev-only run (test = false) has no test rankings to submit; "
                                 "drop submit = true")
            pattern = None
            if lr_from is not None:
                pattern = _run_id(lr_from, values, where, pattern=True)
                if not any(fnmatch.fnmatchcase(p.id, pattern) for p in planned):
                    raise BenchError(f"{where}: lr_from {pattern!r} matches no earlier run of this sweep")
            planned.append(PlannedRun(rid, config, bool(block.get("submit", False)), block.get("name"), pattern))
    return Plan(path, Path(doc["out"]), Path(board) if board else None, tuple(planned))


def tuning_runs(plan: Plan, run: PlannedRun) -> list[PlannedRun]:
    """The earlier runs of ``plan`` whose dev scores pick ``run``'s learning rate (empty without lr_from)."""
    if run.lr_from is None:
        return []
    earlier = plan.runs[:plan.runs.index(run)]
    return [p for p in earlier if fnmatch.fnmatchcase(p.id, run.lr_from)]


def tuned_lr(plan: Plan, run: PlannedRun) -> tuple[float, str] | None:
    """``(lr, run id)`` of the tuning run with the best dev score, or None while a tuning run is not complete."""
    best = None
    for candidate in tuning_runs(plan, run):
        if state(candidate) != "complete":
            return None
        record = runs.read_config(candidate.run_dir)
        score, lr = record.get("best_dev_score"), (record.get("options") or {}).get("lr")
        if not isinstance(score, (int, float)) or not isinstance(lr, (int, float)):
            raise BenchError(f"tuning run {candidate.run_dir} records no best_dev_score and lr; it cannot pick "
                             f"the learning rate of {run.id}")
        if best is None or score > best[0]:
            best = (score, lr, candidate.id)
    return (best[1], best[2]) if best else None


def with_tuned_lr(plan: Plan, run: PlannedRun) -> PlannedRun:
    """``run`` with its learning rate picked on dev (the run itself when it has no lr_from)."""
    if run.lr_from is None:
        return run
    picked = tuned_lr(plan, run)
    if picked is None:
        pending = [p.id for p in tuning_runs(plan, run) if state(p) != "complete"]
        raise BenchError(f"{run.id} takes its learning rate from {run.lr_from!r}, but {pending[0]} is not "
                         "complete; run the sweep again to finish it")
    return dataclasses.replace(run, config=dataclasses.replace(run.config, lr=picked[0]))


def state(run: PlannedRun) -> str:
    """``complete``, ``partial`` (started, resumable) or ``todo``."""
    if not (run.run_dir / runs.CONFIG).exists():
        return "todo"
    return "complete" if runs.is_complete(run.run_dir) else "partial"


def submitted_entry(run: PlannedRun, leaderboard: Path) -> Path | None:
    """The board entry this run became, if ``submitted.json`` says so and the entry is still on the board."""
    try:
        record = json.loads((run.run_dir / SUBMITTED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = leaderboard / record.get("entry", "")
    if record.get("leaderboard") != str(leaderboard) or not entry.is_file():
        return None
    try:
        return entry if json.loads(entry.read_text(encoding="utf-8")).get("id") == record.get("id") else None
    except ValueError:
        return None


class _Options:
    """Resolved options of planned runs, for comparing with what a complete run was trained with."""

    def __init__(self):
        self._datasets: dict = {}
        self._models: dict = {}

    def __call__(self, config: TrainConfig) -> dict:
        from .models import model_identity
        from .paths import default_dataset_dir
        from .tasks import open_prepared
        from .training import resolved_options

        ds_key = config.dataset or str(default_dataset_dir())
        if ds_key not in self._datasets:
            self._datasets[ds_key] = open_prepared(ds_key)
        if config.model not in self._models:  # compared without location (_portable): no need to convert e5
            self._models[config.model] = model_identity(config.model, build=False)
        return resolved_options(config, self._datasets[ds_key], self._models[config.model])


def _portable(options: dict) -> dict:
    """Options without what differs between machines for the same model: where its files are installed."""
    model = {k: v for k, v in (options.get("model") or {}).items() if k != "location"}
    return {**options, "model": model}


def check_complete(run: PlannedRun, options: Callable[[TrainConfig], dict]) -> None:
    """A complete run is reused only if it was trained with exactly the planned options."""
    recorded = _portable(runs.read_config(run.run_dir).get("options", {}))
    wanted = _portable(options(run.config))
    changed = sorted(k for k in set(wanted) | set(recorded) if wanted.get(k) != recorded.get(k))
    if changed:
        raise BenchError(f"run {run.run_dir} is complete but was trained with other options "
                         f"({', '.join(changed)}); delete it or give its block another id")


@dataclass
class Summary:
    trained: list[str] = dataclasses.field(default_factory=list)
    resumed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    submitted: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def run_sweep(plan: Plan, *, submit: bool = True, progress: bool = True,
              echo: Callable[[str], None] = print) -> Summary:
    """Bring every planned run to complete (and submitted), in file order; then re-render the board."""
    started = time.perf_counter()
    summary = Summary()
    options = _Options()
    board = plan.leaderboard if submit else None
    if board is not None:
        from .leaderboard import read_benchmark

        read_benchmark(board)  # a missing or broken board is an error before any training
    n = len(plan.runs)
    for i, planned in enumerate(plan.runs, 1):
        where = f"[{i}/{n}] {planned.id}"
        run = with_tuned_lr(plan, planned)
        if run.lr_from is not None:
            echo(f"{where}: lr {run.config.lr:g}, the best dev score of {run.lr_from}")
        status = state(run)
        if status == "complete":
            check_complete(run, options)
            summary.skipped.append(run.id)
        else:
            echo(f"{where}: {'resuming' if status == 'partial' else 'training'} {run.config.adapter}")
            t0 = time.perf_counter()
            train_isolated(dataclasses.replace(run.config, resume=status == "partial"), progress=progress)
            (summary.resumed if status == "partial" else summary.trained).append(run.id)
            record = runs.read_config(run.run_dir)
            score = record.get("test_main_score")
            echo(f"{where}: complete in {time.perf_counter() - t0:.0f} s, " + (
                f"test main score {score:.4f}" if score is not None
                else f"dev only, best dev score {record.get('best_dev_score') or float('nan'):.4f}"))
        if board is not None and run.submit and submitted_entry(run, board) is None:
            _submit(run, board)
            summary.submitted.append(run.id)
            echo(f"{where}: submitted to {board}")
    if board is not None:
        from .leaderboard import read_benchmark
        from .leaderboard.store import rerender

        rerender(board, read_benchmark(board))
    summary.seconds = time.perf_counter() - started
    return summary


def plan_table(plan: Plan) -> tuple[list[str], list[list]]:
    """``(headers, rows)`` of ``sweep --dry-run``: each planned run, its size, rate (a tuned one once picked), seed,
    whether it is scored on test, its state and whether it is on the board; a recipe or prompt column only where a
    run sets one."""
    from .models import DEFAULT_PROMPTS
    from .training import size_label
    from .training.recipes import PLAIN

    recipes = any(run.config.recipe != PLAIN for run in plan.runs)
    prompts = any(run.config.prompts != DEFAULT_PROMPTS for run in plan.runs)
    rows = []
    for run in plan.runs:
        on_board = "–"
        if run.submit and plan.leaderboard is not None:
            on_board = "yes" if submitted_entry(run, plan.leaderboard) else "no"
        if run.lr_from is not None:
            picked = tuned_lr(plan, run)
            lr = f"{picked[0]:g} (dev)" if picked else "tuned (pending)"
        else:
            lr = f"{run.config.lr:g}" if run.config.lr is not None else "default"
        row = [run.id, run.config.adapter, size_label(run.config.adapter, run.config.rank, run.config.budget),
               *([run.config.recipe] if recipes else []), *([run.config.prompts] if prompts else []), lr,
               run.config.seed, "yes" if run.config.test else "dev only", state(run), on_board]
        rows.append(row)
    headers = ["run", "adapter", "size", *(["recipe"] if recipes else []), *(["prompts"] if prompts else []), "lr",
               "seed", "test", "state", "submitted"]
    return headers, rows


def _die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when its parent dies, however it dies (SIGKILL included),
    so that a killed sweep never leaves a training child writing into the run directory."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _train_child(config: TrainConfig, progress: bool, errors) -> None:
    from .training import train

    _die_with_parent()
    if not progress:
        from .progress import quiet_libraries

        quiet_libraries()
    try:
        train(config, progress=progress)
    except BenchError as err:
        errors.put(str(err))
        raise SystemExit(2) from None


def train_isolated(config: TrainConfig, progress: bool = True) -> None:
    """``train(config)`` in a fresh (spawned) process: each run's peak memory (``ru_maxrss``) is its own, not the
    sweep's running maximum, and no state (threads, caches, allocator) carries from one run to the next. A
    :class:`BenchError` in the child is raised here with its message. Ctrl-C or SIGTERM stops the child first, then
    the sweep (a SIGKILLed sweep's child gets SIGTERM from the kernel: :func:`_die_with_parent`)."""
    import multiprocessing
    import signal
    import threading

    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    child = ctx.Process(target=_train_child, args=(config, progress, errors), name=f"train {config.run_id}")
    child.start()
    terminated: list[int] = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: (terminated.append(signum), child.terminate()))
    try:
        child.join()
    except KeyboardInterrupt:
        child.terminate()
        child.join()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if terminated:  # the child has stopped; now the sweep takes the signal as it would have
        os.kill(os.getpid(), signal.SIGTERM)
    if child.exitcode != 0:
        import queue

        try:
            message = errors.get(timeout=5)
        except queue.Empty:
            message = None
        raise BenchError(message or f"training {config.run_id} failed (exit status {child.exitcode}); "
                         "run the sweep again to resume it, or see the traceback above")


def _submit(run: PlannedRun, board: Path) -> None:
    from .leaderboard import submit
    from .leaderboard.store import DuplicateEntry

    try:
        result = submit(run.run_dir, board, name=run.name, dataset=run.config.dataset)
        path, eid = result.path, result.entry["id"]
    except DuplicateEntry as dup:  # submitted before, but interrupted before submitted.json was written
        path = dup.path
        eid = json.loads(path.read_text(encoding="utf-8"))["id"]
    atomic.write_json(run.run_dir / SUBMITTED, {
        "leaderboard": str(board),
        "entry": path.resolve().relative_to(board.resolve()).as_posix(),
        "id": eid,
    })
