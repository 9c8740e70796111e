"""CLI startup: wall time of `refinery --help`, `refinery recipes` and a two-document `refinery run`.

A two-document run (two tiny .txt files into a fresh run folder, default recipe) does almost no stage
work, so it shows what a run costs outside its stages: Python and library imports, the recipe's stage
code, Prefect's API server (a temporary one, booted by the run, unless PREFECT_API_URL names a running
one) and the flow engine's calls to it, and process exit. Each figure is the median of --repeats runs,
after one untimed run (the first run on a new PREFECT_HOME creates Prefect's database). In-stage
seconds are the sum of the run manifest's ``stages[].seconds``.

With --breakdown it also times, each in a fresh process, the pieces a run pays outside its stages.

Run: .venv/bin/python benchmarks/startup.py [--repeats 3] [--breakdown]
     (PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python benchmarks/startup.py: with a running server)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFINERY = Path(sys.executable).parent / "refinery"
DOCS = {
    "a.txt": "The quick brown fox jumps over the lazy dog. A small English document about foxes and dogs.",
    "b.txt": "A second tiny document: the weather today is sunny and warm, and children play in the park.",
}
# One piece of a run each, timed in a fresh interpreter: (label, setup, timed code, teardown).
PIECES = [
    ("import flows.cli", "", "import flows.cli", ""),
    ("import prefect", "", "import prefect", ""),
    (
        "load_recipe('default') (stage config code)",
        "",
        "from flows.recipe import load_recipe; load_recipe('default')",
        "",
    ),
    ("import flows.curate (after prefect)", "import prefect", "import flows.curate", ""),
    ("import prefect.server.api.server (after prefect)", "import prefect", "import prefect.server.api.server", ""),
    (
        "temporary API server: boot until it answers",
        "from prefect.server.api.server import SubprocessASGIServer; s = SubprocessASGIServer()",
        "s.start()",
        "s.stop()",
    ),
]
# What the interpreter's own exit costs once a run's libraries are loaded (`refinery` skips it: flows.cli).
LOADED = (
    "import flows.cli, flows.curate, prefect.server.api.server; "
    "from flows.recipe import load_recipe; load_recipe('default')"
)


def median_time(fn: Callable[[], float | None], repeats: int) -> float:
    return statistics.median(fn() or 0.0 for _ in range(repeats))


def timed_cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(REFINERY), *args], env=env, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - t0


def two_document_run(inputs: Path, out: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, in-stage seconds) of one run into the fresh folder ``out``."""
    wall = timed_cli(["run", "--input", str(inputs), "--out", str(out)], env)
    manifest = json.loads((out / "manifest.json").read_text())
    return wall, sum(s["seconds"] for s in manifest["stages"])


def piece_seconds(setup: str, code: str, teardown: str, env: dict[str, str]) -> float:
    """Seconds of ``code`` after ``setup`` in a fresh interpreter; ``teardown`` undoes what it started."""
    script = (
        f"import time\n{setup}\nt0 = time.perf_counter()\n{code}\nt = time.perf_counter() - t0\n{teardown}\n"
        "print(t)\nimport os, sys; sys.stdout.flush(); os._exit(0)\n"  # skip the interpreter's exit: not timed
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def exit_seconds(env: dict[str, str]) -> float:
    """Seconds from the end of a script that loaded LOADED to the end of its process (a normal exit)."""
    script = f"{LOADED}\nimport time; print(time.time(), flush=True)"
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, check=True, capture_output=True, text=True)
    return time.time() - float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--breakdown", action="store_true", help="also time each piece of a run's overhead")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="refinery-startup-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(root / "prefect-home"))}
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        inputs = root / "docs"
        inputs.mkdir()
        for name, text in DOCS.items():
            (inputs / name).write_text(text + "\n")
        api = env.get("PREFECT_API_URL") or "a temporary Prefect server per run"
        print(f"refinery startup (median of {args.repeats}; Prefect API: {api}; {os.cpu_count()} CPUs)")

        timed_cli(["--help"], env)  # untimed: warms the file cache
        print(f"  refinery --help      {median_time(lambda: timed_cli(['--help'], env), args.repeats):6.2f} s")
        print(f"  refinery recipes     {median_time(lambda: timed_cli(['recipes'], env), args.repeats):6.2f} s")

        two_document_run(inputs, root / "warm-up", env)  # untimed: creates Prefect's database on a new home
        runs = [two_document_run(inputs, root / f"run-{i}", env) for i in range(args.repeats)]
        wall = statistics.median(w for w, _ in runs)
        stages = statistics.median(s for _, s in runs)
        outside = statistics.median(w - s for w, s in runs)
        print(f"  two-document run     {wall:6.2f} s total, {stages:.2f} s in stages, {outside:.2f} s outside them")

        if args.breakdown:
            print("  pieces of a run's overhead (each in a fresh process):")
            for label, setup, code, teardown in PIECES:
                seconds = median_time(lambda s=setup, c=code, t=teardown: piece_seconds(s, c, t, env), args.repeats)
                print(f"    {label:<50} {seconds:6.2f} s")
            label = "a normal interpreter exit with all of that loaded"
            print(f"    {label:<50} {median_time(lambda: exit_seconds(env), args.repeats):6.2f} s")


if __name__ == "__main__":
    main()
