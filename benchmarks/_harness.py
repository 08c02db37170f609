"""Small helpers shared by the benchmark scripts.

* :func:`describe_environment`: hardware and software the numbers were taken
  on (CPU model and count, torch version and threads, device, load average);
* :class:`Timer`: wall-clock timer (``time.perf_counter``), CUDA-synchronised;
* :class:`PeakMemory`: peak resident memory above the level at entry,
  sampled by a background thread, plus ``getrusage`` max-RSS growth, optional
  ``tracemalloc`` peak and, on CUDA, ``torch.cuda.max_memory_allocated``;
* :func:`write_json`: results to ``benchmarks/results/<name>.json``;
* :func:`markdown_table`/:func:`print_table`: the tables printed by scripts;
* :func:`load_movielens` (any ``fetch_movielens`` variant) and
  :func:`load_movielens_100k`: MovieLens from ``../shared/data`` (relative
  to the repository root) or None with a clear skip message.

Every path is computed from this file's location; nothing machine-specific
is stored here.
"""

import ctypes
import datetime
import gc
import json
import math
import os
import platform
import resource
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATA_HOME = REPO_ROOT.parent / "shared" / "data"

__all__ = [
    "BENCH_DIR",
    "DEFAULT_DATA_HOME",
    "PeakMemory",
    "RESULTS_DIR",
    "Timer",
    "add_common_arguments",
    "cpu_model",
    "describe_environment",
    "format_environment",
    "load_movielens",
    "load_movielens_100k",
    "markdown_table",
    "mean_std",
    "median",
    "print_table",
    "release_memory",
    "set_threads",
    "write_json",
]


# -- environment ---------------------------------------------------------------


def cpu_model():
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count()


def set_threads(n_threads):
    """Set torch's intra-op threads (``torch.set_num_threads``)."""
    import torch

    torch.set_num_threads(int(n_threads))


def describe_environment(device="cpu"):
    """Hardware and software description stored with every result file.

    Parameters
    ----------
    device : str, default="cpu"
        The torch device the benchmark runs on; for CUDA the GPU name is
        recorded.

    Returns
    -------
    env : dict
    """
    import numpy
    import pandas
    import sklearn
    import torch

    env = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": _usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }
    try:
        import skorch

        env["skorch"] = skorch.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        import sklearn_recsys

        env["sklearn_recsys"] = getattr(sklearn_recsys, "__version__", "unknown")
    except ImportError:  # pragma: no cover
        pass
    if str(device).startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        env["load_average_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        pass
    return env


def format_environment(env):
    """One-paragraph human summary of :func:`describe_environment`."""
    parts = [
        f"CPU: {env['cpu_model']} ({env['cpus_usable']} usable of "
        f"{env['cpu_count']} logical CPUs)",
        f"torch {env['torch']} on {env['device']}"
        + (f" ({env['gpu']})" if "gpu" in env else "")
        + f", {env['torch_threads']} torch thread(s)",
        f"Python {env['python']}, numpy {env['numpy']}, pandas {env['pandas']}, "
        f"scikit-learn {env['scikit-learn']}, skorch {env.get('skorch', '?')}",
    ]
    if "load_average_1_5_15min" in env:
        parts.append(
            "load average (1/5/15 min) at start: "
            + "/".join(str(v) for v in env["load_average_1_5_15min"])
        )
    return "\n".join(parts)


# -- timing and memory -----------------------------------------------------------


def _sync(device):
    if device is not None and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


class Timer:
    """``with Timer() as t: ...`` then ``t.elapsed`` and ``t.cpu`` (seconds).

    ``elapsed`` is wall-clock time (``time.perf_counter``); ``cpu`` is the
    CPU time of the process (``time.process_time``, all threads), which is
    much less sensitive than wall time to other jobs sharing the machine.

    Parameters
    ----------
    device : str, default=None
        A CUDA device is synchronised on entry and exit so that the time
        covers the queued kernels.
    """

    def __init__(self, device=None):
        self.device = device
        self.elapsed = None
        self.cpu = None

    def __enter__(self):
        _sync(self.device)
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.elapsed = time.perf_counter() - self._start
        self.cpu = time.process_time() - self._cpu_start
        return False


def release_memory():
    """Collect garbage and return freed heap pages to the OS (glibc).

    Called before a memory measurement so that the resident set at entry
    reflects live data rather than memory freed earlier but kept by the
    allocator.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


def _rss_bytes():
    """Current resident set size in bytes (Linux ``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _maxrss_bytes():
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


class PeakMemory:
    """Peak memory used by the code run inside the ``with`` block.

    * ``rss_peak_mb``: highest resident set size seen by a thread sampling
      ``/proc/self/statm`` every ``interval`` seconds, minus the resident
      size at entry (after :func:`release_memory`). Short spikes between two
      samples can be missed.
    * ``maxrss_growth_mb``: growth of ``getrusage``'s lifetime max RSS; 0 when
      the block stays below an earlier peak of the process, so only
      meaningful for the first large measurement of a process.
    * ``tracemalloc_peak_mb`` (``tracemalloc=True``): peak of Python and
      numpy allocations (torch's CPU allocator is invisible to it). Slows
      Python code down; do not combine with timings.
    * ``cuda_peak_mb`` (CUDA ``device``): ``torch.cuda.max_memory_allocated``
      above the allocation at entry.

    Parameters
    ----------
    interval : float, default=0.005
        Sampling period of the resident size, in seconds.
    device : str, default=None
        Torch device; CUDA peak statistics are reset and read for it.
    tracemalloc : bool, default=False
        Also trace Python allocations.
    """

    def __init__(self, interval=0.005, device=None, tracemalloc=False):
        self.interval = interval
        self.device = device
        self.tracemalloc = tracemalloc
        self.result = {}

    def _sample(self):
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss
            self._stop.wait(self.interval)

    def __enter__(self):
        release_memory()
        self._cuda = self.device is not None and str(self.device).startswith("cuda")
        if self._cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._cuda_start = torch.cuda.memory_allocated(self.device)
        self._rss_start = _rss_bytes()
        self._peak = self._rss_start or 0
        self._maxrss_start = _maxrss_bytes()
        if self.tracemalloc:
            tracemalloc.start()
        self._stop = threading.Event()
        self._thread = None
        if self._rss_start is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        mb = 1024.0**2
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            rss = _rss_bytes()
            self._peak = max(self._peak, rss or 0)
            self.result["rss_peak_mb"] = (self._peak - self._rss_start) / mb
            self.result["rss_at_entry_mb"] = self._rss_start / mb
        self.result["maxrss_growth_mb"] = (_maxrss_bytes() - self._maxrss_start) / mb
        if self.tracemalloc:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.result["tracemalloc_peak_mb"] = peak / mb
        if self._cuda:
            import torch

            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.result["cuda_peak_mb"] = (peak - self._cuda_start) / mb
        return False


# -- statistics -------------------------------------------------------------------


def median(values):
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def mean_std(values):
    """``(mean, population std)`` of a non-empty sequence (std 0 for one value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (
        statistics.pstdev(values) if len(values) > 1 else 0.0
    )


# -- output -------------------------------------------------------------------------


def _fmt(value, floatfmt):
    if isinstance(value, float):
        return format(value, floatfmt)
    return "" if value is None else str(value)


def markdown_table(rows, columns=None, floatfmt=".4g"):
    """A GitHub-flavoured markdown table.

    Parameters
    ----------
    rows : list of dict
        One dict per row.
    columns : list of str or list of (key, header), default=None
        Columns in order; all keys of the first row when None.
    floatfmt : str, default=".4g"
        ``format`` spec of float cells (pre-format a cell as a string to
        override it).

    Returns
    -------
    table : str
    """
    if columns is None:
        columns = list(rows[0]) if rows else []
    columns = [c if isinstance(c, tuple) else (c, c) for c in columns]
    header = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(_fmt(row.get(k), floatfmt) for k, _ in columns) + " |"
        for row in rows
    ]
    return "\n".join([header, rule, *body])


def print_table(title, rows, columns=None, floatfmt=".4g", note=None):
    """Print a markdown section: ``### title``, the table and an optional note."""
    print(f"\n### {title}\n")
    print(markdown_table(rows, columns, floatfmt))
    if note:
        print(f"\n{note}")
    sys.stdout.flush()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()  # numpy / torch scalars
    if isinstance(obj, Path):
        return str(obj)
    return obj


def loglog_exponent(x, y):
    """Least-squares slope ``b`` of ``log(y) = a + b log(x)``."""
    slope, _ = statistics.linear_regression([math.log(float(v)) for v in x],
                                            [math.log(float(v)) for v in y])
    return slope


def _relative(path):
    """An absolute ``path`` relative to the repository root (no machine paths
    in the results); anything else unchanged."""
    if not os.path.isabs(path):
        return str(path)
    return os.path.relpath(Path(path).resolve(), REPO_ROOT)


def command_line():
    """The running script's command line, ``python`` first, with absolute
    paths made relative to the repository root."""
    return " ".join(["python", *map(_relative, sys.argv)])


def write_json(name, payload, path=None):
    """Write ``payload`` to ``benchmarks/results/<name>.json`` (or ``path``).

    A ``"written_at"`` UTC timestamp and the command line are added.

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path) if path is not None else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": command_line(),
        **payload,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(_jsonable(payload), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


# -- data ------------------------------------------------------------------------------


def add_common_arguments(parser):
    """``--data-home``, ``--quick``, ``--threads`` and ``--output``."""
    parser.add_argument(
        "--data-home",
        default=str(DEFAULT_DATA_HOME),
        help="folder holding ml-100k/ (and the other MovieLens folders, e.g. "
        "ml-latest-small/; default: ../shared/data relative to the repository root)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced run (smoke test, minutes)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default: 1)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="result file (default: benchmarks/results/<name>.json)",
    )
    return parser


MOVIELENS_FOLDERS = {"100k": "ml-100k", "1m": "ml-1m", "20m": "ml-20m",
                     "latest-small": "ml-latest-small"}
MOVIELENS_NAMES = {"100k": "MovieLens-100K", "1m": "MovieLens-1M",
                   "20m": "MovieLens-20M", "latest-small": "MovieLens latest-small"}


def load_movielens(variant="100k", data_home=None):
    """A MovieLens variant as the ``fetch_movielens`` Bunch, or None when missing.

    Never downloads: the data must already be extracted under
    ``data_home/ml-<variant>`` (default ``../shared/data`` relative to the
    repository root). When it is missing a message saying what is skipped is
    printed and None returned.

    Parameters
    ----------
    variant : {"100k", "1m", "20m", "latest-small"}, default="100k"
        Passed to ``sklearn_recsys.datasets.fetch_movielens``.
    data_home : str or path, default=None
        Folder holding ``ml-<variant>/``.
    """
    from sklearn_recsys.datasets import fetch_movielens

    data_home = Path(data_home) if data_home is not None else DEFAULT_DATA_HOME
    folder = MOVIELENS_FOLDERS.get(variant, f"ml-{variant}")
    try:
        return fetch_movielens(variant, data_home=data_home, download_if_missing=False)
    except OSError as exc:
        print(
            f"SKIPPED: {MOVIELENS_NAMES.get(variant, variant)} not found under "
            f"{data_home / folder} ({exc}). Pass --data-home pointing to the folder "
            f"that contains {folder}/ to run the MovieLens benchmarks.",
            file=sys.stderr,
        )
        return None


def load_movielens_100k(data_home=None):
    """MovieLens-100K as the ``fetch_movielens`` Bunch, or None when missing.

    ``load_movielens("100k", data_home)``: never downloads, prints what is
    skipped and returns None when ``data_home/ml-100k`` is missing.
    """
    return load_movielens("100k", data_home)
