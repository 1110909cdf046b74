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

The chart, an SVG drawn in Python, is :mod:`.chart`.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import resources

from ..metric_names import PRIMARY_METRIC
from .benchmark import Benchmark
from .board import LABELS, SHOWN, Group, Table, bases, fmt, fmt_params, fmt_primary
from .chart import METHOD_COLORS, SPARE_COLORS, Look, _e, base_text, chart, colors, legend, place_labels  # noqa: F401

TITLE = "ELSST-Bench leaderboard"
PRIMARY_HEADER = f"{LABELS[PRIMARY_METRIC]} ± std"
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
