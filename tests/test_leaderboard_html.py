"""Leaderboard: the static page in headless Chromium — self-contained, rows equal to the entries, sortable.

Needs Debian's ``chromium`` (``apt-get install -y chromium``, which CI installs); skipped only when
``/usr/bin/chromium`` is absent. Chromium runs with no network features and a throw-away profile.
"""

from __future__ import annotations

import re
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leaderboard_fixtures import evaluated_run, make_run, new_board

from elsst_bench.leaderboard import store, submit, tables
from elsst_bench.leaderboard.board import fmt_params
from elsst_bench.metric_names import PRIMARY_METRIC

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is absent (Debian package `chromium`; CI installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


class Rows(HTMLParser):
    """Tables of the dumped DOM: ``{table key: [(entry ids, [[cell text, ...] per row])]}`` and panel states."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list] = {}
        self.hidden: dict[str, bool] = {}
        self.sorted: dict[str, str | None] = {}
        self.body_ready = None
        self._table = self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body_ready = a.get("data-ready")
        elif tag == "section" and "data-task" in a:
            self.hidden[a["data-task"]] = "hidden" in a
        elif tag == "table":
            self._table = a["data-table"]
            self.tables[self._table] = []
            self.sorted[self._table] = a.get("data-sorted")
        elif tag == "tbody" and self._table:
            self.tables[self._table].append((a["data-entries"].split(), []))
        elif tag == "tr" and self._table and self.tables[self._table]:
            self.tables[self._table][-1][1].append([])
        elif tag == "td" and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.tables[self._table][-1][1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def board(small_dataset, tmp_path_factory):
    """Zero-shot, two seeds of one configuration, one of another, and an English-only broader run."""
    root = tmp_path_factory.mktemp("lb-html")
    base = evaluated_run(str(small_dataset.path))
    board = new_board(root, small_dataset)
    runs = [base,
            make_run(base, root / "lora-s0", seed=0),
            make_run(base, root / "lora-s1", seed=1),
            make_run(base, root / "dora-s0", seed=0, adapter="dora", trainable_params=79_872, perturb_seed=5),
            make_run(base, root / "vera-en", seed=0, adapter="vera", trainable_params=1_536, perturb_seed=9,
                     tasks=("broader",), languages=("en",))]
    for run in runs:
        submit(run, board, dataset=small_dataset.path)
    return board


def dom(board: Path, tmp: Path, fragment: str = "") -> Rows:
    out = chromium(tmp, "--dump-dom", f"file://{board / 'index.html'}{fragment}").stdout
    parsed = Rows()
    parsed.feed(out)
    assert parsed.body_ready == "1", "the page's script did not run to the end"
    return parsed


def test_page_is_self_contained(board):
    html = (board / "index.html").read_text()
    assert not re.findall(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', html, flags=re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert html.count("<svg") == len(tables([e for _, e in store.load_entries(board)]))


def test_rendered_rows_equal_the_entries(board, tmp_path):
    entries = [e for _, e in store.load_entries(board)]
    expected = tables(entries)
    page = dom(board, tmp_path)
    assert list(page.tables) == [t.key for t in expected]
    assert page.hidden == {"broader": False, "synonym": True, "crosslingual": True, "definition": True}
    for table in expected:
        shown = page.tables[table.key]
        assert [ids for ids, _ in shown] == [g.ids for g in table.groups]  # one tbody per row, in rank order
        for (ids, rows), group in zip(shown, table.groups):
            assert len(rows) == len(table.row_keys)
            first = rows[0]
            assert first[0] == str(group.rank)
            assert first[3] == fmt_params(group.trainable_params)
            primary = group.stats["macro"][PRIMARY_METRIC]
            assert any(cell.startswith(f"{primary.mean:.4f} ± ") for cell in first), first
    # Every entry appears in the tab of every task it ranked, and nowhere else.
    for task in ("broader", "synonym", "crosslingual", "definition"):
        on_page = {i for key, bodies in page.tables.items() if key.startswith(task + "-") for ids, _ in bodies
                   for i in ids}
        assert on_page == {e["id"] for e in entries if task in e["scores"]}
    assert "broader-en" in page.tables and "broader-de-en" in page.tables  # one table per language set


def test_sorting_from_the_address(board, tmp_path):
    page = dom(board, tmp_path, "#task=synonym&sort=params&dir=asc")
    assert page.hidden["synonym"] is False and page.hidden["broader"] is True
    for key, bodies in page.tables.items():
        assert page.sorted[key] == "params:asc"
        params = [int(rows[0][3].replace(",", "")) for _, rows in bodies]
        assert params == sorted(params)
    page = dom(board, tmp_path, "#sort=primary&dir=asc")
    values = [float(rows[0][5].split()[0]) for _, rows in page.tables["synonym-de-en"]]
    assert values == sorted(values)


def test_screenshot(board, tmp_path):
    shot = tmp_path / "leaderboard.png"
    chromium(tmp_path, f"--screenshot={shot}", f"file://{board / 'index.html'}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 900)
    assert len(data) > 30_000  # a rendered page, not a blank one
