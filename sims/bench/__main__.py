"""Run the benchmarks and print one table with the machine they ran on.

Usage: ``python -m sims.bench [MODULE ...] [--markdown]`` (modules: gas, model, txpipe, ...).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

import sims.bench as pkg
from sims.bench import BenchResult


def machine() -> str:
    """Describe the machine: CPU model, cores, memory, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    """Run the selected (default: all) benchmark modules and print the table."""
    ap = argparse.ArgumentParser(prog="scripts/bench")
    ap.add_argument("modules", nargs="*", help="benchmark modules to run (default: all)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    names = args.modules or sorted(
        m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")
    )
    rows: list[tuple[str, BenchResult]] = []
    failed = False
    for name in names:
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            results: list[BenchResult] = importlib.import_module(f"sims.bench.{name}").run()
        except Exception as exc:  # a broken benchmark must not hide the others' figures
            print(f"[bench] {name} failed: {exc!r}", file=sys.stderr)
            failed = True
            continue
        print(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows += [(name, r) for r in results]
    print(f"machine: {machine()}")
    status = {True: "ok", False: "MISS", None: ""}
    if args.markdown:
        print("| area | benchmark | value | target | |")
        print("|---|---|---|---|---|")
        for area, r in rows:
            print(f"| {area} | {r.name} | {r.value} | {r.target} | {status[r.ok]} |")
    else:
        w = max([len(r.name) for _, r in rows] + [9])
        v = max([len(r.value) for _, r in rows] + [5])
        t = max([len(r.target) for _, r in rows] + [6])
        print(f"{'area':<8} {'benchmark':<{w}} {'value':>{v}}  {'target':<{t}}")
        for area, r in rows:
            print(f"{area:<8} {r.name:<{w}} {r.value:>{v}}  {r.target:<{t}} {status[r.ok]}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
