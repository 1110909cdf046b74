"""The repository stays lean: no result file (adapter, ranking, entry) over a few MB is kept in git."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import ROOT

#: What "a few MB" means for one file under results/ or leaderboards/ (the largest today: a VeRA adapter, 4.9 MB).
LIMIT = 5 * 2**20


@pytest.mark.skipif(not (ROOT / ".git").exists() or not shutil.which("git"), reason="not a git checkout")
def test_no_result_file_over_the_limit_is_tracked_or_about_to_be():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--",
                             "results", "leaderboards"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [ROOT / p for p in listed.decode().split("\0") if p]
    assert paths, "git lists no file under results/ or leaderboards/"
    large = {str(p.relative_to(ROOT)): p.stat().st_size for p in paths if p.is_file() and p.stat().st_size > LIMIT}
    assert not large, f"files over {LIMIT / 2**20:.0f} MiB (add them to .gitignore; the sweep rebuilds them): {large}"


@pytest.mark.skipif(not (ROOT / ".git").exists() or not shutil.which("git"), reason="not a git checkout")
def test_no_result_file_names_a_place_on_the_machine_that_made_it():
    """Committed runs and entries name bases, sources and commands by identity or by their place in the checkout,
    never by this machine's paths (a clone elsewhere could not use them)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--",
                             "results", "leaderboards"], cwd=ROOT, capture_output=True, check=True).stdout
    needles = [str(ROOT) + "/", "site-packages/"]
    found = {}
    for name in listed.decode().split("\0"):
        path = ROOT / name
        if name.endswith((".json", ".jsonl", ".toml", ".md")) and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            hits = [n for n in needles if n in text]
            if hits:
                found[name] = hits
    assert not found, f"machine paths in committed results: {found}"
