"""From entries to ranked tables: one table per task and language set, one row per configuration.

- **Language set.** An entry contributes to the table of each task it ranked, under the set of languages it
  ranked for that task (``en``; ``de+en``; …). Entries with other language sets are not mixed.
- **Configuration (a row).** Entries with the same display name, base model (name and weights hash), adapter,
  trainable parameters and training options (rank/budget, lr, epochs, batch size, training tasks and
  languages, adapter options, …) form one row; they normally differ only in the seed.
- **Numbers.** Mean over the row's entries; for the primary metric also the sample standard deviation
  (n − 1). With one entry there is no spread and the board shows ``–``. With several languages the ranked
  row holds the macro average over the languages (each entry's unweighted mean over its languages), followed
  by one row per language.
- **Rank.** By the mean primary metric (macro), descending; ties by fewer trainable parameters, then name.
- **Base models.** A row has one base (its entries' ``model``: name and weights hash); :func:`bases` lists the
  board's bases in order of first submission, each with a slug for the page's filter (``#base=<slug>``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

from .. import runs
from ..metric_names import PRIMARY_METRIC
from ..slugs import slug
from ..tasks import TASKS

#: The metrics the board shows, the primary one first, and their column labels.
SHOWN = (PRIMARY_METRIC, "mrr@10", "recall@10", "wup@1")
LABELS = {PRIMARY_METRIC: "nDCG@10 graded", "mrr@10": "MRR@10", "recall@10": "Recall@10", "wup@1": "WuP@1"}


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None  # None: fewer than two values
    n: int


def stat(values: list) -> Stat:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return Stat(None, None, 0)
    mean = math.fsum(vals) / len(vals)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return Stat(mean, std, len(vals))


@dataclass
class Group:
    name: str
    model: dict
    adapter: str
    trainable_params: int
    options: dict
    entries: list[dict] = field(default_factory=list)
    rank: int = 0
    stats: dict[str, dict[str, Stat]] = field(default_factory=dict)  # lang or "macro" -> metric -> Stat

    @property
    def seeds(self) -> list:
        return sorted((e["seed"] for e in self.entries), key=lambda s: (s is None, s if s is not None else 0))

    @property
    def ids(self) -> list[str]:
        return sorted(e["id"] for e in self.entries)

    @property
    def date(self) -> str:
        return max(e["submitted"] for e in self.entries)

    @property
    def method(self) -> str:
        """The adapter as the board names it (:func:`method_label`)."""
        return method_label(self.adapter)

    @property
    def setup(self) -> str:
        return setup_text(self.adapter, self.options)

    @property
    def base(self) -> str:
        """The base model's key (:func:`model_key`)."""
        return model_key(self.model)

    @property
    def label(self) -> str:
        """Short label for the chart: ``lora r8``, ``none``."""
        return " ".join(x for x in (self.method, size_text(self.adapter, self.options)) if x)

    def primary(self) -> float | None:
        return self.stats["macro"][PRIMARY_METRIC].mean


@dataclass
class Table:
    task: str
    languages: tuple[str, ...]
    groups: list[Group]

    @property
    def key(self) -> str:
        return f"{self.task}-{'-'.join(self.languages)}"

    @property
    def title(self) -> str:
        return f"{self.task} · {', '.join(self.languages)}"

    @property
    def row_keys(self) -> list[str]:
        """The rows each configuration shows: ``macro`` then the languages, or the one language."""
        return ["macro", *self.languages] if len(self.languages) > 1 else ["macro"]


@dataclass(frozen=True)
class Base:
    name: str
    sha256: str | None
    slug: str  # the page's filter value; unique on the board
    index: int  # order of first submission (0: the board's first base)


def model_key(model: dict) -> str:
    return json.dumps([model.get("name"), model.get("sha256")])


def bases(tables: list[Table]) -> dict[str, Base]:
    """The board's base models by :func:`model_key`, in order of first submission (then name and hash)."""
    first: dict[str, str] = {}
    for table in tables:
        for group in table.groups:
            date = min(e["submitted"] for e in group.entries)
            first[group.base] = min(first.get(group.base, date), date)
    ordered = sorted(first, key=lambda k: (first[k], k))
    slugs = [slug(json.loads(k)[0], "base") for k in ordered]
    taken = Counter(slugs)
    out = {}
    for i, (key, s) in enumerate(zip(ordered, slugs)):
        name, sha = json.loads(key)
        out[key] = Base(name, sha, f"{s}-{i + 1}" if taken[s] > 1 else s, i)
    return out


def size_text(adapter: str, options: dict) -> str:
    """The adapter's size knob: its parameter budget (``lora-r8``) or rank (``r8``); empty for baselines."""
    if not runs.is_adapter(adapter):
        return ""
    if options.get("budget"):
        return str(options["budget"])
    return f"r{options['rank']}" if options.get("rank") is not None else ""


def method_label(adapter: str) -> str:
    """A registry method by its name; any other (a method of its own, submitted from a fork) marked as such, so it
    is never read as one of the registry's."""
    return adapter if runs.method(adapter) is not None else f"{adapter} (not in the registry)"


def setup_text(adapter: str, options: dict) -> str:
    """A short human summary of the options that tell configurations apart (``r8 · lr 0.003 · 3 ep``)."""
    parts = [size_text(adapter, options)] if size_text(adapter, options) else []
    if options.get("lr") is not None:
        parts.append(f"lr {options['lr']:g}" if isinstance(options["lr"], (int, float)) else f"lr {options['lr']}")
    trained = runs.trains(adapter)
    if options.get("epochs") is not None and trained:
        parts.append(f"{options['epochs']} ep")
    if options.get("languages") and trained:
        parts.append("train " + "+".join(options["languages"]))
    for key, value in sorted((options.get("options") or {}).items()):
        parts.append(f"{key}={value}")
    if options.get("max_pairs") and trained:
        parts.append(f"max {options['max_pairs']} pairs")
    if options.get("prompts"):
        parts.append(f"prompts {options['prompts']}")
    if options.get("recipe"):
        extra = ", ".join(f"{k}={v}" for k, v in sorted((options.get("recipe_options") or {}).items()))
        parts.append(f"recipe {options['recipe']}" + (f" ({extra})" if extra else ""))
    return " · ".join(parts)


def group_key(entry: dict) -> str:
    return json.dumps([entry["name"], entry["model"], entry["adapter"], entry["trainable_params"],
                       entry.get("options") or {}], sort_keys=True)


def _sort_key(group: Group):
    primary = group.primary()
    return (primary is None, -(primary or 0.0), group.trainable_params, group.name, group.adapter,
            json.dumps(group.options, sort_keys=True))


def tables(entries: list[dict], tasks: list[str] | None = None) -> list[Table]:
    """Ranked tables, in task order (TASKS) and, within a task, by language set (fewest languages first)."""
    by_table: dict[tuple[str, tuple[str, ...]], dict[str, Group]] = {}
    for entry in sorted(entries, key=lambda e: e["id"]):
        for task, per_lang in entry["scores"].items():
            if tasks and task not in tasks:
                continue
            langs = tuple(sorted(lang for lang in per_lang if lang != "macro"))
            groups = by_table.setdefault((task, langs), {})
            key = group_key(entry)
            if key not in groups:
                groups[key] = Group(entry["name"], entry["model"], entry["adapter"], entry["trainable_params"],
                                    entry.get("options") or {})
            groups[key].entries.append(entry)
    order = {t: i for i, t in enumerate(TASKS)}
    out = []
    for (task, langs), groups in sorted(by_table.items(),
                                        key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][0], len(kv[0][1]),
                                                        kv[0][1])):
        ranked = list(groups.values())
        for group in ranked:
            sources = {"macro": "macro" if len(langs) > 1 else langs[0], **{lang: lang for lang in langs}}
            group.stats = {row: {m: stat([e["scores"][task][src].get(m) for e in group.entries]) for m in SHOWN}
                           for row, src in sources.items()}
        ranked.sort(key=_sort_key)
        for i, group in enumerate(ranked, start=1):
            group.rank = i
        out.append(Table(task, langs, ranked))
    return out


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def fmt_primary(s: Stat) -> str:
    if s.mean is None:
        return "–"
    return f"{s.mean:.4f} ± {'–' if s.std is None else f'{s.std:.4f}'}"


def fmt_params(n: int) -> str:
    return f"{n:,}"
