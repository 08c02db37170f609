"""Run every benchmark, then regenerate the tables of ``benchmarks/README.md``.

Each script runs in its own process (so one's memory and thread settings do
not leak into the next) with ``OMP_NUM_THREADS=1``, the given ``--threads``
and ``--data-home``, and ``--quick`` when given. A failing script is reported
and the others still run; the exit status is non-zero if any failed.

Usage (from the repository root)::

    python benchmarks/run_all.py            # full suite, about 2 hours on 2 CPU cores
    python benchmarks/run_all.py --quick    # smoke run, a few minutes
    python benchmarks/run_all.py --only peers,overhead

``--quick`` results overwrite ``benchmarks/results/*.json`` too; rerun
without it before committing numbers.
"""

import argparse
import os
import subprocess
import sys
import time

from _harness import BENCH_DIR, DEFAULT_DATA_HOME

SCRIPTS = [
    "mf", "baselines", "sequential", "cnn", "peers", "overhead", "scaling", "deploy", "export",
    "serve", "catalogue", "large_catalogue", "sampled_softmax", "privacy", "attributes",
]


def command(name, args):
    """Command line of ``bench_<name>.py`` (the older scripts have no
    ``--quick``: their reduced runs are spelled out here)."""
    cmd = [sys.executable, str(BENCH_DIR / f"bench_{name}.py")]
    data = ["--data-home", args.data_home]
    threads = ["--threads", str(args.threads)]
    if name == "mf":  # --tune: the validation sweeps behind the tuned settings
        cmd += data + threads + (["--quick"] if args.quick else ["--tune"])
    elif name in (
        "peers", "deploy", "export", "serve", "catalogue", "large_catalogue", "privacy",
        "attributes", "sampled_softmax",
    ):
        cmd += data + threads + (["--quick"] if args.quick else [])
    elif name in ("overhead", "scaling"):
        cmd += threads + (["--quick"] if args.quick else [])
    elif name == "baselines":
        cmd += data + (["--skip-synthetic", "--repeats", "1"] if args.quick else [])
    elif name == "sequential":
        cmd += data + threads + (["--max-iter", "3"] if args.quick else [])
    elif name == "cnn":
        cmd += data + (["--quick"] if args.quick else [])
    return cmd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of every script")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--data-home", default=str(DEFAULT_DATA_HOME),
                        help="folder holding ml-100k/ (default ../shared/data "
                        "relative to the repository root)")
    parser.add_argument("--only", default=",".join(SCRIPTS),
                        help=f"comma-separated subset of {','.join(SCRIPTS)}")
    parser.add_argument("--no-tables", action="store_true",
                        help="do not regenerate the README tables")
    args = parser.parse_args(argv)
    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(selected) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    failed = []
    for name in selected:
        cmd = command(name, args)
        print(f"\n==> {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(cmd, env=env, cwd=BENCH_DIR.parent).returncode
        print(f"<== bench_{name}: exit {rc} after {time.perf_counter() - start:.0f} s",
              flush=True)
        if rc != 0:
            failed.append(name)
    if not args.no_tables:
        subprocess.run([sys.executable, str(BENCH_DIR / "make_readme_tables.py")],
                       env=env, cwd=BENCH_DIR.parent, check=False)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
