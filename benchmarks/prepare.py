"""Full `elsst-bench prepare` (all languages, all tasks) against a plain rdflib parse of the same file.

Each measurement runs in a fresh child process (so imports count, as they do for a user), the two
commands interleaved, ``--repeat`` times; wall time and the child's peak RSS (``os.wait4``) are reported
as medians. Goals (issue #2): prepare at least 4x faster than the rdflib parse, under 3 s, under 500 MB.

    python benchmarks/prepare.py [--repeat 3] [--source data/ELSST_R5.rdf.gz]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RDFLIB_PARSE = """
import gzip, sys, rdflib
g = rdflib.Graph()
g.parse(data=gzip.decompress(open(sys.argv[1], 'rb').read()), format='xml')
print(len(g))
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", default=str(ROOT / "data" / "ELSST_R5.rdf.gz"))
    args = parser.parse_args()
    exe = Path(sys.executable).parent / "elsst-bench"
    out = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    commands = {
        "elsst-bench prepare (all)": [str(exe), "prepare", "--source", args.source, "--out", str(out / "d")],
        "rdflib Graph.parse": [sys.executable, "-c", RDFLIB_PARSE, args.source],
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    try:
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                results[name].append(measure(cmd))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"cores: {os.cpu_count()}  repeats: {args.repeat}  source: {args.source}")
    print(f"{'command':<28} {'wall s (median)':>16} {'peak MB (median)':>17}")
    med = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs)
        med[name] = (wall, rss)
        print(f"{name:<28} {wall:>16.2f} {rss:>17.0f}")
    ours, peer = med["elsst-bench prepare (all)"], med["rdflib Graph.parse"]
    speedup = peer[0] / ours[0]
    print(f"speed-up vs rdflib parse: {speedup:.1f}x (goal >= 4x)   prepare wall: {ours[0]:.2f} s (goal < 3 s)   "
          f"prepare peak: {ours[1]:.0f} MB (goal < 500 MB)")
    ok = speedup >= 4 and ours[0] < 3 and ours[1] < 500
    print("goals met" if ok else "GOALS NOT MET")


if __name__ == "__main__":
    main()
