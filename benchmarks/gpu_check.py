"""One-command GPU check: every estimator on CUDA against the same fit on CPU.

Each estimator is fitted twice on the same data with the same seed
(``random_state=0``): once with ``device="cpu"`` and once with the device
under test (``--device``, default ``cuda``). The check fails when the quality
on the device differs from the CPU's by more than the stated tolerance
(``|device - cpu| <= REL_TOL * |cpu| + ABS_TOL``); random streams (shuffling,
negative sampling, dropout) differ between devices, so the two fits agree
within seed noise, not bit for bit.

Estimators: MatrixFactorization (``loss`` "mse" with its default Gibbs
sampler, 150 sweeps, and with ``solver="adam"``; "bce", "bpr", "softmax" and
``architecture="neumf"``), CNNRecommender with item images, LSTMRecommender,
AttentionRecommender and the baselines Popularity, ItemKNN, EASE.

Data (``sklearn_recsys.datasets.make_interactions``, fixed seeds):

* implicit: 2,000 users x 1,000 items, about 100k interactions, with 8x8
  item images (for the CNN); per-user 80/20 split
  (``UserHoldout(test_size=0.2, random_state=0)``); quality NDCG@10
  (``make_ranking_scorer("ndcg", k=10)``: full ranking, training items
  excluded);
* explicit: the same size with integer ratings 1-5; random 80/20 split
  (``train_test_split``); quality RMSE of ``predict`` (MF ``loss="mse"``);
* sequential: the same size with a planted Markov chain; leave-last-out
  (``LeaveLastOut(n_test=1)``); NDCG@10 of the held-out last item;
* MovieLens-100K, only when ``--data-home`` holds ``ml-100k/`` (default
  ``../shared/data`` relative to the repository root; skipped silently when
  absent, and always with ``--quick``): MF mse (RMSE), MF bpr and EASE
  (NDCG@10).

Recorded per estimator and device: fit wall and CPU time, epochs
(``n_iter_``), training samples/s (training interactions x epochs / the
epoch-loop time, the sum of ``net_.history[:, "dur"]``; for the baselines,
training interactions / fit wall time), median epoch time, peak GPU memory
(``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
through the harness's ``PeakMemory``), peak RSS growth, ``recommend``
latency (median of 5 calls, 2 with ``--quick``, for 256 known users, k=10,
CUDA-synchronised, after one warm-up call) and the quality figure.

Mixed precision (AMP): every neural estimator (those whose ``get_params()``
has an ``accelerator`` key) is fitted a third time, on the device under
test, with ``accelerator=Accelerator(mixed_precision="bf16",
cpu=(device == "cpu"))`` (Hugging Face Accelerate: the forward pass and the
loss run under ``torch.autocast``), the same data, seed and epochs. Its
``"amp"`` entry holds that fit (``"run"``, measured as above), the fit and
median-epoch speed-ups over the default-precision fit on the same device
(``"fit_speedup"``, ``"epoch_speedup"``: default time / bf16 time, above 1
when bf16 is faster), the ratio of peak GPU memory (``"cuda_peak_ratio"``,
CUDA only) and ``"quality"``: default precision against bf16 with the same
tolerance (a failure fails the check). Accelerate keeps one configuration
per process, so one Accelerator is created, on first use, and reused for
every estimator (``free_memory()`` after each fit). ``"amp"`` is a string
saying why when there is no such fit: ``"not available in this version"``
for the baselines (no ``accelerator`` parameter), ``"not applicable: the
Gibbs sampler trains no network"`` for MF's ratings default (an accelerator
would switch it to Adam, not a like-for-like fit), ``"accelerate not
installed"``, or ``"skipped: ..."`` when the accelerator would not train on
the device under test (e.g. it picks ``cuda:0`` and the device is another
GPU), or cannot be created (e.g. no bf16 support). On the CPU the figures
are CPU bf16 ones (often slower than float32), not a GPU's.

Every estimator is first fitted once on tiny data (1 epoch) on the CPU and
on the device (and, for the neural ones, through the bf16 accelerator), so
that lazy imports, CUDA context creation, cuBLAS/cuDNN initialisation,
Accelerate's set-up and kernel loading are not charged to the timed fits.

Usage (from the repository root)::

    python benchmarks/gpu_check.py                       # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --quick  # smoke test, seconds
    python benchmarks/gpu_check.py --device cpu          # both sides on CPU

Writes ``benchmarks/results/gpu.json`` (``--out``) and prints a table last.
Exit status: 0 when every quality check passes, 1 when one fails or an
estimator raised (after writing the JSON), 2 when the device is unavailable.
"""

import argparse
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from _harness import (
    DEFAULT_DATA_HOME,
    RESULTS_DIR,
    PeakMemory,
    Timer,
    describe_environment,
    format_environment,
    median,
    print_table,
    release_memory,
    set_threads,
    write_json,
)
from sklearn_recsys import (
    EASE,
    AttentionRecommender,
    CNNRecommender,
    ItemContent,
    ItemKNN,
    LSTMRecommender,
    MatrixFactorization,
    Popularity,
)
from sklearn_recsys.datasets import fetch_movielens, make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import (
    LeaveLastOut,
    UserHoldout,
    train_test_split,
)

NAME = "gpu"
SEED = 0
K = 10
REL_TOL = 0.05  # relative tolerance on the quality figure
ABS_TOL = 0.005  # plus this absolute slack (full size)
ABS_TOL_QUICK = 0.05  # tiny data, 2 epochs: much noisier
REC_USERS = 256  # users per recommend call
REC_REPEATS = 5  # timed recommend calls (after one warm-up call)
REC_REPEATS_QUICK = 2
AMP_PRECISION = "bf16"
AMP_MISSING = "not available in this version"
AMP_GIBBS = "not applicable: the Gibbs sampler trains no network"
AMP_NO_ACCELERATE = "accelerate not installed"

# epochs of the neural models (full size; --quick uses QUICK_EPOCHS)
EPOCHS = {"mf_gibbs": 150, "mf_mse": 20, "mf_bce": 10, "mf_bpr": 10, "mf_softmax": 30, "neumf": 10,
          "cnn": 5, "lstm": 10, "attention": 10}
QUICK_EPOCHS = 2


# -- data ---------------------------------------------------------------------------


class Data:
    """A train/test split and how to score a model on it."""

    def __init__(self, name, description, X_train, X_test, y_train=None,
                 y_test=None, metric="ndcg@10", **info):
        self.name = name
        self.description = description
        self.X_train, self.X_test = X_train, X_test
        self.y_train, self.y_test = y_train, y_test
        self.metric = metric
        self.info = info

    @property
    def higher_is_better(self):
        return self.metric != "rmse"

    def fit_args(self):
        return (self.X_train,) if self.y_train is None else (self.X_train, self.y_train)

    def quality(self, est):
        if self.metric == "rmse":
            pred = np.asarray(est.predict(self.X_test), dtype=float)
            return float(np.sqrt(np.mean((pred - np.asarray(self.y_test, float)) ** 2)))
        return float(make_ranking_scorer("ndcg", k=K)(est, self.X_test))

    def summary(self):
        return {
            "description": self.description,
            "metric": self.metric,
            "n_users": int(self.X_train["user"].nunique()),
            "n_items": int(self.X_train["item"].nunique()),
            "n_train": len(self.X_train),
            "n_test": len(self.X_test),
            **self.info,
        }


def _sizes(quick):
    if quick:
        return dict(n_users=200, n_items=100, density=0.1)
    return dict(n_users=2000, n_items=1000, density=0.05)


def synthetic_data(quick):
    """The implicit (with item images), explicit and sequential datasets."""
    size = _sizes(quick)
    gen = f"make_interactions({', '.join(f'{k}={v}' for k, v in size.items())}, "
    imp = make_interactions(**size, item_features="image", image_shape=(8, 8),
                            random_state=SEED)
    X = imp.interactions[["user", "item"]]
    train, test = next(UserHoldout(test_size=0.2, random_state=SEED).split(X))
    implicit = Data(
        "synthetic-implicit",
        gen + "item_features='image', random_state=0); "
        "UserHoldout(test_size=0.2, random_state=0); NDCG@10, training items excluded",
        X.iloc[train], X.iloc[test], n_interactions=len(X))
    content = ItemContent(np.arange(len(imp.item_images)), images=imp.item_images)

    exp = make_interactions(**size, feedback="explicit", random_state=SEED)
    X, y = exp.interactions[["user", "item"]], exp.interactions["rating"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=SEED)
    explicit = Data(
        "synthetic-explicit",
        gen + "feedback='explicit', random_state=0); "
        "train_test_split(test_size=0.2, random_state=0); RMSE of predict",
        X_train, X_test, y_train, y_test, metric="rmse", n_interactions=len(X))

    seq = make_interactions(**size, sequential=True, random_state=SEED)
    X = seq.interactions[["user", "item", "timestamp"]]
    train, test = next(LeaveLastOut(n_test=1).split(X))
    sequential = Data(
        "synthetic-sequential",
        gen + "sequential=True, random_state=0); LeaveLastOut(n_test=1); "
        "NDCG@10 of the last item, training items excluded",
        X.iloc[train], X.iloc[test], n_interactions=len(X))
    return implicit, explicit, sequential, content


def movielens_data(data_home):
    """ML-100K ratings and implicit splits, or None when ``ml-100k/`` is absent."""
    if data_home is None or not (Path(data_home) / "ml-100k").is_dir():
        return None
    ml = fetch_movielens("100k", data_home=data_home, download_if_missing=False)
    X, y = ml.interactions[["user", "item"]], ml.interactions["rating"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=SEED)
    ratings = Data("ml-100k-ratings",
                   "MovieLens-100K; train_test_split(test_size=0.2, random_state=0); "
                   "RMSE of predict (not clipped)",
                   X_train, X_test, y_train, y_test, metric="rmse",
                   n_interactions=len(X))
    train, test = next(UserHoldout(test_size=0.2, random_state=SEED).split(X))
    implicit = Data("ml-100k-implicit",
                    "MovieLens-100K, all ratings as positives; "
                    "UserHoldout(test_size=0.2, random_state=0); NDCG@10",
                    X.iloc[train], X.iloc[test], n_interactions=len(X))
    return ratings, implicit


# -- estimators ---------------------------------------------------------------------


class Spec:
    """An estimator to check: label, factory(**params) and its data."""

    def __init__(self, label, cls, data, params, epochs_key=None):
        self.label, self.cls, self.data = label, cls, data
        self.params = params
        self.epochs_key = epochs_key

    def make(self, device, quick, **extra):
        params = dict(self.params, device=device, **extra)
        if self.epochs_key is not None:
            params.setdefault("max_iter", QUICK_EPOCHS if quick else EPOCHS[self.epochs_key])
            params.setdefault("random_state", SEED)
        return self.cls(**params)


def specs(implicit, explicit, sequential, content, movielens):
    out = [
        Spec("MatrixFactorization(loss='mse')", MatrixFactorization, explicit,
             dict(loss="mse"), "mf_gibbs"),
        Spec("MatrixFactorization(loss='mse', solver='adam')", MatrixFactorization, explicit,
             dict(loss="mse", solver="adam"), "mf_mse"),
        Spec("MatrixFactorization(loss='bce')", MatrixFactorization, implicit,
             dict(loss="bce"), "mf_bce"),
        Spec("MatrixFactorization(loss='bpr')", MatrixFactorization, implicit,
             dict(loss="bpr"), "mf_bpr"),
        Spec("MatrixFactorization(loss='softmax')", MatrixFactorization, implicit,
             dict(loss="softmax"), "mf_softmax"),
        Spec("MatrixFactorization(architecture='neumf', loss='bce')",
             MatrixFactorization, implicit, dict(architecture="neumf", loss="bce"),
             "neumf"),
        Spec("CNNRecommender(item_content=8x8 images)", CNNRecommender, implicit,
             dict(item_content=content), "cnn"),
        Spec("LSTMRecommender()", LSTMRecommender, sequential, {}, "lstm"),
        Spec("AttentionRecommender()", AttentionRecommender, sequential, {},
             "attention"),
        Spec("Popularity()", Popularity, implicit, {}),
        Spec("ItemKNN()", ItemKNN, implicit, {}),
        Spec("EASE()", EASE, implicit, {}),
    ]
    if movielens is not None:
        ratings, ml_implicit = movielens
        out += [
            Spec("MatrixFactorization(loss='mse')", MatrixFactorization, ratings,
                 dict(loss="mse"), "mf_gibbs"),
            Spec("MatrixFactorization(loss='bpr')", MatrixFactorization, ml_implicit,
                 dict(loss="bpr"), "mf_bpr"),
            Spec("EASE()", EASE, ml_implicit, {}),
        ]
    return out


# -- measurements ----------------------------------------------------------------


def _is_cuda(device):
    return str(device).startswith("cuda")


def _error(exc):
    return {"type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": traceback.format_exc()[-4000:]}


def _cleanup(device):
    release_memory()
    if _is_cuda(device):
        try:
            torch.cuda.empty_cache()
        except RuntimeError:  # a failed kernel leaves the context unusable;
            pass  # every later CUDA fit then reports its own error


def recommend_latency(est, device, repeats):
    """Median seconds of ``recommend`` for REC_USERS known users, k=K."""
    users = np.asarray(est.user_ids_)[:REC_USERS]
    est.recommend(users, k=K)  # warm-up
    times = []
    for _ in range(repeats):
        with Timer(device) as t:
            est.recommend(users, k=K)
        times.append(t.elapsed)
    return {"recommend_users": len(users), "recommend_s": median(times),
            "recommend_s_all": times}


def measure(spec, device, quick, accelerator=None):
    """Fit ``spec`` on ``device``; timings, memory, latency and quality.

    With ``accelerator`` (one that trains on ``device``), the estimator
    trains through it; its references to the fit are freed afterwards.
    """
    data = spec.data
    run = {"device": str(device)}
    est = None
    try:
        if accelerator is None:
            est = spec.make(device, quick)
        else:
            run["accelerator"] = _describe_accelerator(accelerator)
            # the accelerator's own spelling of its device (``device`` must
            # not contradict it: "cuda" and "cuda:0" differ for torch)
            est = spec.make(str(accelerator.device), quick, accelerator=accelerator)
        _cleanup(device)
        with PeakMemory(interval=0.05, device=device) as mem, Timer(device) as t:
            est.fit(*data.fit_args())
        run.update(fit_wall_s=t.elapsed, fit_cpu_s=t.cpu)
        run.update({k: v for k, v in mem.result.items()
                    if k in ("cuda_peak_mb", "rss_peak_mb")})
        run.setdefault("cuda_peak_mb", None)
        n_train = len(data.X_train)
        net = getattr(est, "net_", None)
        if net is not None:
            durations = [float(d) for d in net.history[:, "dur"]]
            loop = sum(durations)
            run.update(
                epochs=int(getattr(est, "n_iter_", len(durations))),
                epoch_s=durations,
                median_epoch_s=median(durations),
                epoch_loop_s=loop,
                train_samples_per_s=n_train * len(durations) / loop,
                throughput_basis="training interactions x epochs / sum of "
                "net_.history[:, 'dur']",
            )
        else:
            run.update(epochs=None, median_epoch_s=None,
                       train_samples_per_s=n_train / t.elapsed,
                       throughput_basis="training interactions / fit wall time")
        run.update(recommend_latency(
            est, device, REC_REPEATS_QUICK if quick else REC_REPEATS))
        value = data.quality(est)
        run["quality"] = value
        if not math.isfinite(value):
            run["error"] = {"type": "NonFinite", "message": f"quality is {value}"}
    except Exception as exc:  # keep going: report every estimator
        run["error"] = _error(exc)
        print(f"  ERROR {spec.label} on {device}: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
    finally:
        del est
        if accelerator is not None:
            accelerator.free_memory()  # drop its references to this fit
        _cleanup(device)
    return run


def compare(cpu_value, dev_value, abs_tol):
    """Quality agreement: ``|dev - cpu| <= REL_TOL * |cpu| + abs_tol``."""
    if cpu_value is None or dev_value is None:
        return {"ok": False, "reason": "missing value"}
    diff = abs(dev_value - cpu_value)
    allowed = REL_TOL * abs(cpu_value) + abs_tol
    return {"cpu": cpu_value, "device": dev_value, "abs_diff": diff,
            "allowed": allowed, "ok": bool(diff <= allowed)}


class AmpAccelerator:
    """The one bf16 ``Accelerator`` of this process, created on first use.

    Accelerate keeps one configuration per process: a second Accelerator
    with other settings raises, so the first one is kept and reused.
    ``get(device)`` returns ``(accelerator, None)`` or ``(None, why not)``.
    """

    def __init__(self):
        self._accelerator, self._cpu, self._why_not = None, None, None

    def get(self, device):
        cpu = not _is_cuda(device)
        if self._accelerator is None and self._why_not is None:
            try:
                from accelerate import Accelerator
            except ImportError:
                self._why_not = AMP_NO_ACCELERATE
            else:
                try:
                    self._accelerator = Accelerator(mixed_precision=AMP_PRECISION,
                                                    cpu=cpu)
                    self._cpu = cpu
                except Exception as exc:  # e.g. a GPU without bf16
                    self._why_not = (f"skipped: Accelerator(mixed_precision="
                                     f"{AMP_PRECISION!r}) failed: "
                                     f"{type(exc).__name__}: {exc}"[:500])
        if self._why_not is not None:
            return None, self._why_not
        if self._cpu != cpu:
            return None, ("skipped: this process's accelerator was made for "
                          f"{'the CPU' if self._cpu else 'CUDA'}, not {device}")
        acc = self._accelerator
        if acc.num_processes != 1:
            return None, (f"skipped: {acc.num_processes} processes; the check "
                          "compares one-process fits")
        if _resolve(acc.device) != _resolve(device):
            return None, (f"skipped: the accelerator trains on "
                          f"{_resolve(acc.device)}, not on the device under test "
                          f"{_resolve(device)}")
        return acc, None


def _resolve(device):
    """``torch.device`` with the CUDA index made explicit ("cuda" -> "cuda:N")."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def _describe_accelerator(acc):
    return {"mixed_precision": str(acc.mixed_precision), "device": str(acc.device),
            "num_processes": int(acc.num_processes)}


def _has_accelerator(spec, device, quick):
    """Whether the estimator takes an ``accelerator`` (the neural ones)."""
    return "accelerator" in spec.make(device, quick).get_params()


def _amp_figures(amp):
    """One line of the AMP result for the progress log."""
    if isinstance(amp, str):
        return amp
    if "quality" not in amp or "fit_speedup" not in amp:
        return "fit failed"
    q = amp["quality"]
    epoch = (f"epoch x{amp['epoch_speedup']:.2f}, " if "epoch_speedup" in amp else "")
    return (f"{epoch}fit x{amp['fit_speedup']:.2f}, quality "
            f"{q['fp32']:.4f} -> {q[AMP_PRECISION]:.4f} "
            f"({'ok' if q['ok'] else 'FAIL'})")


def amp_check(spec, device, quick, fp32, abs_tol, amp):
    """Fit through the bf16 accelerator (``amp``: :class:`AmpAccelerator`)
    when the estimator has an ``accelerator`` parameter; compare with the
    default-precision fit ``fp32`` on the same device."""
    try:
        supported = _has_accelerator(spec, device, quick)
    except Exception as exc:
        return {"error": _error(exc)}
    if not supported:
        return AMP_MISSING
    if getattr(spec.make(device, quick), "_uses_gibbs", lambda: False)():
        return AMP_GIBBS  # an accelerator would switch it to Adam: not a like fit
    accelerator, why_not = amp.get(device)
    if accelerator is None:
        return why_not
    run = measure(spec, device, quick, accelerator=accelerator)
    out = {"precision": AMP_PRECISION, "default_precision": "float32",
           "parameter": f"accelerator=Accelerator(mixed_precision={AMP_PRECISION!r}, "
                        f"cpu={not _is_cuda(device)})",
           "run": run}
    if "error" in run or "error" in fp32:
        out["quality"] = {"ok": False, "reason": "a fit failed"}
        return out
    out["fit_speedup"] = fp32["fit_wall_s"] / run["fit_wall_s"]
    if fp32.get("median_epoch_s") and run.get("median_epoch_s"):
        out["epoch_speedup"] = fp32["median_epoch_s"] / run["median_epoch_s"]
    if fp32.get("cuda_peak_mb") and run.get("cuda_peak_mb"):
        out["cuda_peak_ratio"] = run["cuda_peak_mb"] / fp32["cuda_peak_mb"]
    quality = compare(fp32["quality"], run["quality"], abs_tol)
    quality["fp32"], quality[AMP_PRECISION] = quality.pop("cpu"), quality.pop("device")
    out["quality"] = quality  # same device, default precision vs AMP
    return out


def warm_up(all_specs, devices, accelerator=None, amp_device=None):
    """Fit every estimator once on tiny data (1 epoch) on each device, so
    that one-off costs (lazy imports, CUDA context, cuBLAS/cuDNN handles,
    kernel loading) are not charged to the timed fits; with ``accelerator``,
    the neural ones once more through it on ``amp_device`` (Accelerate's
    set-up, bf16 kernels)."""
    implicit, explicit, sequential, content = synthetic_data(quick=True)
    tiny = {"synthetic-implicit": implicit, "synthetic-explicit": explicit,
            "synthetic-sequential": sequential}
    passes = [(str(device), device, None) for device in dict.fromkeys(devices)]
    if accelerator is not None:
        passes.append((f"{amp_device} {AMP_PRECISION}", amp_device, accelerator))
    out = {}
    for name, device, acc in passes:
        seen, errors = set(), {}
        with Timer(device) as t:
            for spec in all_specs:
                if spec.label in seen or spec.data.name not in tiny:
                    continue
                if acc is not None and not spec.epochs_key:
                    continue  # the baselines have no accelerator
                seen.add(spec.label)
                params = dict(spec.params)
                if "item_content" in params:
                    params["item_content"] = content
                small = Spec(spec.label, spec.cls, tiny[spec.data.name], params,
                             spec.epochs_key)
                est = None
                try:
                    extra = {"max_iter": 1} if spec.epochs_key else {}
                    if acc is None:
                        est = small.make(device, True, **extra)
                    else:
                        est = small.make(str(acc.device), True, accelerator=acc,
                                         **extra)
                    est.fit(*small.data.fit_args())
                    est.recommend(np.asarray(est.user_ids_)[:8], k=K)
                except Exception as exc:  # the timed run reports it
                    errors[spec.label] = f"{type(exc).__name__}: {exc}"[:500]
                finally:
                    del est
                    if acc is not None:
                        acc.free_memory()
                    _cleanup(device)
        out[name] = {"seconds": t.elapsed, "errors": errors}
    return out


def gpu_info(device):
    if not _is_cuda(device):
        return None
    dev = torch.device(device)
    props = torch.cuda.get_device_properties(dev)
    return {
        "name": torch.cuda.get_device_name(dev),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(dev))),
        "total_memory_gb": props.total_memory / 1024**3,
        "multi_processors": props.multi_processor_count,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "device_count": torch.cuda.device_count(),
    }


# -- main -----------------------------------------------------------------------------


def _fmt(value, spec=".4g"):
    return "" if value is None else format(value, spec)


def summary_rows(results):
    rows = []
    for r in results:
        cpu, dev, q = r["cpu"], r["device"], r["quality"]
        amp = r["amp"]
        if isinstance(amp, str):
            amp_cell = ("no accelerate" if amp == AMP_NO_ACCELERATE
                        else "skipped" if amp.startswith("skipped") else "n/a")
        elif "epoch_speedup" in amp or "fit_speedup" in amp:
            amp_cell = (f"x{amp.get('epoch_speedup', amp.get('fit_speedup')):.2f}"
                        + ("" if amp["quality"].get("ok") else " FAIL"))
        else:
            amp_cell = "error"
        rows.append({
            "model": r["estimator"],
            "data": r["dataset"].replace("synthetic-", "syn-"),
            "metric": r["metric"],
            "cpu": _fmt(q.get("cpu"), ".4f"),
            "dev": _fmt(q.get("device"), ".4f"),
            "ok": "yes" if r["ok"] else "NO",
            "fit_cpu": _fmt(cpu.get("fit_wall_s"), ".2f"),
            "fit_dev": _fmt(dev.get("fit_wall_s"), ".2f"),
            "ep_cpu": _fmt(cpu.get("median_epoch_s"), ".3f"),
            "ep_dev": _fmt(dev.get("median_epoch_s"), ".3f"),
            "sps_dev": _fmt(dev.get("train_samples_per_s"), ",.0f"),
            "gpu_mb": _fmt(dev.get("cuda_peak_mb"), ".0f"),
            "rec_cpu": _fmt(1e3 * cpu["recommend_s"] if "recommend_s" in cpu else None, ".1f"),
            "rec_dev": _fmt(1e3 * dev["recommend_s"] if "recommend_s" in dev else None, ".1f"),
            "amp": amp_cell,
        })
    return rows


COLUMNS = [
    ("model", "estimator"), ("data", "data"), ("metric", "metric"),
    ("cpu", "CPU"), ("dev", "device"), ("ok", "agree"),
    ("fit_cpu", "fit s CPU"), ("fit_dev", "fit s dev"),
    ("ep_cpu", "epoch s CPU"), ("ep_dev", "epoch s dev"),
    ("sps_dev", "samples/s dev"), ("gpu_mb", "peak GPU MB"),
    ("rec_cpu", "rec ms CPU"), ("rec_dev", "rec ms dev"), ("amp", "AMP"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="device under test, compared with the CPU "
                        "(default: cuda; cpu runs both sides on the CPU)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny data, 2 epochs, no MovieLens (seconds; CI)")
    parser.add_argument("--data-home", default=str(DEFAULT_DATA_HOME),
                        help="folder holding ml-100k/ (default: ../shared/data "
                        "relative to the repository root; skipped when absent)")
    parser.add_argument("--out", default=str(RESULTS_DIR / f"{NAME}.json"),
                        help="result file (default: benchmarks/results/gpu.json)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 with --quick, which "
                        "keeps the smoke test fast on a busy machine, else "
                        "torch's default)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.threads or args.quick:
        set_threads(args.threads or 1)
    device = args.device
    abs_tol = ABS_TOL_QUICK if args.quick else ABS_TOL
    tolerance = {
        "rule": "|device - cpu| <= rel * |cpu| + abs, on NDCG@10 or RMSE",
        "rel": REL_TOL, "abs": abs_tol,
    }
    env = describe_environment(device)
    settings = {
        "device": device, "quick": args.quick, "seed": SEED,
        "torch_threads": torch.get_num_threads(), "tolerance": tolerance,
        "epochs": {k: QUICK_EPOCHS if args.quick else v for k, v in EPOCHS.items()},
        "recommend": {"users": REC_USERS, "k": K,
                      "timed_calls": REC_REPEATS_QUICK if args.quick else REC_REPEATS,
                      "statistic": "median, after one warm-up call"},
        "amp": {"parameter": "accelerator",
                "value": f"Accelerator(mixed_precision={AMP_PRECISION!r}, "
                         f"cpu={not _is_cuda(device)})",
                "precision": AMP_PRECISION, "compared_with": "float32 (default)",
                "device": device, "estimators": "neural (with an accelerator "
                "parameter); the baselines: not available"},
    }
    payload = {"passed": False, "failures": [], "hardware": format_environment(env),
               "environment": env, "gpu": None, "settings": settings}

    if _is_cuda(device) and not torch.cuda.is_available():
        msg = f"--device {device}: torch {torch.__version__} sees no CUDA device"
        print(f"ERROR: {msg}", file=sys.stderr)
        payload.update(error=msg, results=[])
        write_json(NAME, payload, args.out)
        return 2
    payload["gpu"] = gpu_info(device)
    print(format_environment(env))
    if payload["gpu"]:
        g = payload["gpu"]
        print(f"GPU: {g['name']} (compute {g['capability']}, "
              f"{g['total_memory_gb']:.0f} GiB), torch CUDA {g['torch_cuda']}, "
              f"cuDNN {g['cudnn']}")
    print(f"Tolerance: |{device} - cpu| <= {REL_TOL:.0%} of cpu + {abs_tol} "
          "(NDCG@10 or RMSE)", flush=True)

    implicit, explicit, sequential, content = synthetic_data(args.quick)
    movielens = None if args.quick else movielens_data(args.data_home)
    datasets = {d.name: d.summary() for d in (implicit, explicit, sequential)}
    if movielens is not None:
        datasets.update({d.name: d.summary() for d in movielens})
    payload["datasets"] = datasets
    payload["movielens_100k"] = (
        "skipped (--quick)" if args.quick
        else "used" if movielens is not None
        else "skipped (no ml-100k/ under --data-home)")
    all_specs = specs(implicit, explicit, sequential, content, movielens)
    amp = AmpAccelerator()  # the process's one bf16 accelerator, on first use
    accelerator = None

    def neural(spec):
        try:
            return _has_accelerator(spec, device, args.quick)
        except Exception:  # measure() and amp_check() report it
            return False

    if any(neural(spec) for spec in all_specs):
        accelerator, why_not = amp.get(device)
        settings["amp"]["status"] = (
            _describe_accelerator(accelerator) if accelerator is not None else why_not)
    payload["warm_up"] = warm_up(all_specs, ["cpu", device], accelerator, device)
    print("warm-up (every estimator, tiny data, 1 epoch): " + ", ".join(
        f"{d} {w['seconds']:.1f} s" for d, w in payload["warm_up"].items()), flush=True)

    results = []
    for spec in all_specs:
        t0 = time.perf_counter()
        cpu = measure(spec, "cpu", args.quick)
        dev = measure(spec, device, args.quick)
        quality = compare(cpu.get("quality"), dev.get("quality"), abs_tol)
        amp_entry = amp_check(spec, device, args.quick, dev, abs_tol, amp)
        errors = [f"{side}: {run['error']['type']}: {run['error']['message']}"
                  for side, run in (("cpu", cpu), ("device", dev))
                  if "error" in run]
        ok = not errors and quality["ok"]
        if isinstance(amp_entry, dict):
            if "error" in amp_entry or "error" in amp_entry.get("run", {}):
                errors.append("amp: fit failed")
                ok = False
            elif not amp_entry["quality"]["ok"]:
                ok = False
        entry = {
            "estimator": spec.label, "class": spec.cls.__name__,
            "dataset": spec.data.name, "metric": spec.data.metric,
            "higher_is_better": spec.data.higher_is_better,
            "params": {k: v for k, v in spec.params.items() if k != "item_content"}
            | ({"item_content": repr(spec.params["item_content"])}
               if "item_content" in spec.params else {})
            | ({"max_iter": QUICK_EPOCHS if args.quick else EPOCHS[spec.epochs_key],
                "random_state": SEED} if spec.epochs_key else {}),
            "quality": quality, "ok": ok, "errors": errors,
            "cpu": cpu, "device": dev, "amp": amp_entry,
        }
        results.append(entry)
        if not ok:
            payload["failures"].append(f"{spec.label} [{spec.data.name}]")
        print(f"{spec.label} [{spec.data.name}]: {spec.data.metric} "
              f"cpu {_fmt(cpu.get('quality'), '.4f')} {device} "
              f"{_fmt(dev.get('quality'), '.4f')} -> {'ok' if ok else 'FAIL'} "
              f"({time.perf_counter() - t0:.1f} s); {AMP_PRECISION} on {device}: "
              f"{_amp_figures(amp_entry)}", flush=True)

    payload["results"] = results
    payload["passed"] = not payload["failures"]
    payload["total_time_s"] = time.perf_counter() - start
    path = write_json(NAME, payload, args.out)
    verdict = ("PASSED: every quality check agrees" if payload["passed"]
               else f"FAILED: {', '.join(payload['failures'])}")
    print_table(
        f"GPU check: {device} vs cpu ({'quick' if args.quick else 'full'}, "
        f"{payload['total_time_s']:.0f} s)",
        summary_rows(results), COLUMNS,
        note=f"Quality agrees when |{device} - cpu| <= {REL_TOL:.0%} of cpu + "
        f"{abs_tol}. Times: medians; rec = recommend({REC_USERS} users, k={K}). "
        f"AMP: {AMP_PRECISION} (Accelerate) on {device}, median-epoch speed-up over "
        f"the default precision on {device} (x>1: faster), FAIL when its quality "
        "leaves the tolerance; n/a: no accelerator parameter. "
        f"Written to {path}.\n{verdict}")
    return 0 if payload["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
