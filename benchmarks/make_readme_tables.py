"""Regenerate the result tables of ``benchmarks/README.md``, and the results
block of the top-level ``README.md``, from the JSON files in
``benchmarks/results/``.

In both files the text between ``<!-- BEGIN GENERATED -->`` and
``<!-- END GENERATED -->`` is replaced; everything else is hand-written. In
``benchmarks/README.md`` a missing or unreadable result file gives a line
saying so instead of a table; the top-level summary needs every file.

Usage (from the repository root)::

    python benchmarks/make_readme_tables.py           # rewrite both READMEs
    python benchmarks/make_readme_tables.py --print   # print the tables only
"""

import argparse
import ast
import json
import re
import sys

from _harness import BENCH_DIR, RESULTS_DIR, loglog_exponent, markdown_table

BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"


def _load(name):
    path = RESULTS_DIR / f"{name}.json"
    with open(path) as f:
        return json.load(f)


def _f(v, fmt=".4f"):
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else (
        "" if v is None else str(v))


def _stamp(d):
    parts = []
    if d.get("written_at"):
        parts.append(f"written {d['written_at']}")
    if d.get("command"):
        parts.append(f"by `{d['command']}`")
    return f"*Source: `benchmarks/results/{d.get('_name')}.json`" + (
        f", {', '.join(parts)}" if parts else "") + ".*"


def hardware():
    rows = []
    for name in ("mf", "peers", "overhead", "scaling", "baselines", "sequential", "cnn",
                 "deploy", "export", "serve"):
        try:
            d = _load(name)
        except (OSError, ValueError):
            continue
        env = d.get("environment") or d.get("hardware") or {}
        rows.append(dict(
            file=f"{name}.json",
            cpu=env.get("cpu_model", env.get("processor", "")),
            cpus=env.get("cpus_usable", env.get("cpu_count", "")),
            torch=env.get("torch", ""),
            threads=env.get("torch_threads", env.get("torch_num_threads", "")),
            device=env.get("device", ""),
        ))
    return "### Hardware recorded in the result files\n\n" + markdown_table(
        rows, [("file", "result file"), ("cpu", "CPU"), ("cpus", "CPUs"),
               ("torch", "torch"), ("threads", "torch threads"), ("device", "device")])


def mf():
    d = _load("mf")
    d["_name"] = "mf"
    r = d["results"]
    out = ["### MatrixFactorization (`bench_mf.py`)", ""]
    rows = []
    if "explicit" in r:
        s = r["explicit"]["summary"]
        rows.append(dict(task="ML-100K ratings, RMSE (clipped)", model="loss='mse'",
                         value=f"{s['rmse_mean']:.4f} ± {s['rmse_std']:.4f}",
                         target=f"<= {s['target']}", ok="yes" if s["passed"] else "NO",
                         fit=_f(s["fit_s_mean"], ".1f")))
    for loss in ("bpr", "bce"):
        if loss in r.get("implicit", {}):
            s = r["implicit"][loss]["summary"]
            rows.append(dict(
                task="ML-100K top-N, NDCG@10", model=f"loss='{loss}'",
                value=f"{s['ndcg@10_mean']:.4f} ± {s['ndcg@10_std']:.4f} "
                f"(Recall@10 {s['recall@10_mean']:.4f}, HR@10 {s['hr@10_mean']:.4f})",
                target=f">= {s['target_ndcg']}", ok="yes" if s["passed"] else "NO",
                fit=_f(s["fit_s_mean"], ".1f")))
    out.append(markdown_table(rows, [("task", "task"), ("model", "model"),
                                     ("value", "mean ± std over seeds"),
                                     ("target", "target"), ("ok", "met"),
                                     ("fit", "fit wall (s)")]))
    if "throughput" in r:
        rows = []
        for bs, b in r["throughput"]["batches"].items():
            tp = b["samples_per_s"]
            rows.append(dict(batch=f"{int(bs):,}", plain=f"{tp['plain_wall']:,.0f}",
                             ours=f"{tp['ours_wall']:,.0f}",
                             ratio=_f(b["ratio_loop_wall"], ".2f"),
                             ratio_cpu=_f(b["ratio_loop_cpu"], ".2f"),
                             ok="yes" if b["passed"] else "NO"))
        out += ["", f"Throughput, {r['throughput']['n_interactions']:,} synthetic "
                "ratings, biased MF (32 factors), samples/s (wall):", "",
                markdown_table(rows, [("batch", "batch"), ("plain", "plain loop"),
                                      ("ours", "MatrixFactorization.fit"),
                                      ("ratio", "plain/ours (wall)"),
                                      ("ratio_cpu", "plain/ours (CPU)"),
                                      ("ok", "<= 1.2")])]
    out += ["", _stamp(d)]
    return "\n".join(out)


def baselines():
    d = _load("baselines")
    d["_name"] = "baselines"
    m = d["movielens"]
    rows = [dict(model=x["model"], hp=x.get("hyperparameters", ""),
                 ndcg=_f(x.get("ndcg@10")), recall=_f(x.get("recall@10")),
                 hr=_f(x.get("hit_rate@10")), fit=_f(x.get("fit_time_s"), ".2f"))
            for x in m["results"]]
    out = ["### Baselines (`bench_baselines.py`)", "", f"Protocol: {m['protocol']}", "",
           markdown_table(rows, [("model", "model"), ("hp", "hyperparameters"),
                                 ("ndcg", "NDCG@10"), ("recall", "Recall@10"),
                                 ("hr", "HR@10"), ("fit", "fit (s)")])]
    s = d.get("synthetic_ease")
    if s:
        out += ["", f"EASE on synthetic {s['n_users']:,} users x {s['n_items']:,} "
                f"items ({s['nnz']:,} interactions): fit {s['fit_time_s']:.0f} s, "
                f"peak RSS increase {s['fit_peak_increase_gb']:.2f} GB."]
    out += ["", _stamp(d)]
    return "\n".join(out)


def sequential():
    d = _load("sequential")
    d["_name"] = "sequential"
    s = d["setup"]
    keys = []
    for row in d["results"]:
        for k, v in row.items():
            if k not in keys and not isinstance(v, (dict, list)):
                keys.append(k)
    rows = [{k: (_f(v) if isinstance(v, float) else v) for k, v in row.items()}
            for row in d["results"]]
    out = ["### Sequential models (`bench_sequential.py`)", "",
           f"{s['dataset']}; split: {s['split']}; ranking: {s['ranking']}.", "",
           markdown_table(rows, keys), "", _stamp(d)]
    return "\n".join(out)


def cnn():
    d = _load("cnn")
    d["_name"] = "cnn"
    out = ["### CNNRecommender (`bench_cnn.py`)", ""]
    rows = []
    for section, label in (("digits_cold_start", "digits images, cold items"),
                           ("ml100k_cold_start", "ML-100K titles (text), cold items"),
                           ("ml100k_warm", "ML-100K, warm items")):
        sec = d.get(section)
        if not sec:
            continue
        scores = sec.get("ndcg@10_cold") or sec.get("ndcg@10") or {}
        for model, v in scores.items():
            rows.append(dict(task=label, model=model, ndcg=_f(v)))
    out += [markdown_table(rows, [("task", "task"), ("model", "model"),
                                  ("ndcg", "NDCG@10")]), "", _stamp(d)]
    return "\n".join(out)


def deploy():
    d = _load("deploy")
    d["_name"] = "deploy"
    env = d.get("environment", {})
    out = ["### Model artifacts and int8 (`bench_deploy.py`, ML-100K)", "",
           f"Machine: {env.get('cpu_model', '')}, torch {env.get('torch', '')}, "
           f"{env.get('torch_threads', '')} torch thread(s).", ""]
    rows = [dict(
        model=r["model"], params=_f(r["parameter_bytes"] / 1024, ",.1f"),
        ids=_f(r["id_bytes"] / 1024, ",.1f"), file=_f(r["file_bytes"] / 1024, ",.1f"),
        ratio=_f(r["file_over_params_ids"], ".2f"),
        other=_f(r["stored_other_bytes"] / 1024, ",.1f"),
        pickle=_f(r["pickle_bytes"] / 1024, ",.1f"),
        same="yes" if r["load_save_recommend_identical"] else "NO",
    ) for r in d["artifacts"]]
    out += [markdown_table(rows, [
        ("model", "model"), ("params", "parameters (KiB)"), ("ids", "id maps (KiB)"),
        ("file", "artifact (KiB)"), ("ratio", "artifact / (parameters + ids)"),
        ("other", "of which seen items, histories (KiB)"), ("pickle", "pickle (KiB)"),
        ("same", "load(save(m)) recommends identically"),
    ]), ""]
    rows = [dict(
        model=r["model"], f32=_f(r["ndcg@10_float32"]),
        st=f"{_f(r['ndcg@10_int8_storage'])} ({r['rel_change_int8_storage_pct']:+.2f}%)",
        both=(f"{_f(r['ndcg@10_int8_storage_compute'])} "
              f"({r['rel_change_int8_storage_compute_pct']:+.2f}%)"),
        size=(f"{r['file_bytes_float32'] / 1024:,.0f} -> {r['file_bytes_int8'] / 1024:,.0f}"
              f" ({r['file_ratio_int8_over_float32']:.2f}x)"),
        lat=(f"{r['latency_ms_float32']:.1f} -> {r['latency_ms_int8_compute']:.1f}"
             + (" (no linear layer)" if r["int8_compute_changes_nothing"] else
                f" ({r['speedup_int8_compute']:.2f}x faster)")),
    ) for r in d["int8"]]
    out += [markdown_table(rows, [
        ("model", "model"), ("f32", "NDCG@10 float32"),
        ("st", "int8 storage (`save(quantize='int8')`)"),
        ("both", "+ int8 linear layers (`load(quantize='int8')`)"),
        ("size", "file KiB float32 -> int8"),
        ("lat", "recommend 256 users, ms: float32 -> int8 compute"),
    ]), "", _stamp(d)]
    return "\n".join(out)


def export():
    d = _load("export")
    d["_name"] = "export"
    env = d.get("environment", {})
    out = ["### Export (`bench_export.py`, ML-100K)", "",
           f"Machine: {env.get('cpu_model', '')}, torch {env.get('torch', '')}, "
           f"{d.get('threads', '')} thread(s); scoring {d.get('batch_users')} users, "
           f"every item; models trained {d.get('epochs')} epoch(s).", ""]
    rows = [dict(
        model=r["model"], inp=r["input"], te=_f(r["torch_export_s"], ".2f"),
        onnx=_f(r["to_onnx_s"], ".2f"), mb=_f(r["onnx_mb"], ".2f"),
        tms=_f(r["torch_export_ms"], ".2f"), oms=_f(r["onnxruntime_ms"], ".2f"),
        rms=_f(r["recommend_ms"], ".2f"), diff=_f(r["onnx_vs_torch_max_abs_diff"], ".1e"),
    ) for r in d["results"]]
    out += [markdown_table(rows, [
        ("model", "model"), ("inp", "graph input"), ("te", "torch.export (s)"),
        ("onnx", "to_onnx (s)"), ("mb", "ONNX (MB)"), ("tms", "exported program (ms)"),
        ("oms", "onnxruntime (ms)"), ("rms", "`recommend` k=10 (ms)"),
        ("diff", "max abs ONNX - torch"),
    ]), "", _stamp(d)]
    return "\n".join(out)


def serve():
    d = _load("serve")
    d["_name"] = "serve"
    env = d.get("environment", {})
    data = d.get("data", {})
    out = ["### HTTP service load test (`bench_serve.py`)", "",
           f"Machine: {env.get('cpu_model', '')} ({env.get('cpus_usable', '')} CPUs), "
           f"torch {env.get('torch', '')}, {env.get('torch_threads', '')} torch thread(s); "
           f"server and load client on the same machine over localhost. Models "
           f"trained on {data.get('dataset', '')} with the package defaults; "
           "`POST /recommend` of one random known user, k=10. "
           f"Failed requests in all: **{d['failed_requests']}**.", ""]
    rows = [dict(
        model=r["model"], batching=r["batching"], clients=r["clients"],
        requests=r["requests"], failed=r["failed"], rps=_f(r["requests_per_s"], ",.0f"),
        p50=_f(r["p50_ms"], ".1f"), p99=_f(r["p99_ms"], ".1f"),
        per_call=_f(r["requests_per_model_call"], ".1f"),
    ) for r in d["load"]]
    out += [markdown_table(rows, [
        ("model", "model"), ("batching", "batching"), ("clients", "concurrent clients"),
        ("requests", "requests"), ("failed", "failed"), ("rps", "requests/s"),
        ("p50", "p50 ms"), ("p99", "p99 ms"), ("per_call", "requests per model call"),
    ]), ""]
    for model, m in d.get("malformed", {}).items():
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(m["statuses"].items()))
        out.append(
            f"* {model}: {m['requests']:,} malformed requests answered {statuses} "
            f"(none 5xx: {m['not_4xx'] == 0}); afterwards /health and a valid "
            f"/recommend answered: {m['health_after'] and m['valid_recommend_after']}."
        )
    out += ["", _stamp(d)]
    return "\n".join(out)


def privacy():
    full = _load("privacy")
    d = full["test"]
    d["_name"] = "privacy"
    d.setdefault("written_at", full.get("written_at"))
    st = d["settings"]
    env = d.get("environment", {})
    out = ["### Differentially private training (`bench_privacy.py`, ML-100K)", "",
           f"Machine: {env.get('cpu_model', '')}, torch {env.get('torch', '')}, one thread. "
           f"User-level DP-SGD: max_grad_norm {st['max_grad_norm']}, sample_rate "
           f"{st['sample_rate']}, delta {st['delta']}, {st['accountant'].upper()} accountant; "
           f"private MF with learning_rate_init {st['mf_learning_rate_init']}.", ""]
    rows = []
    for task, sec in d["sections"].items():
        for r in sec["rows"]:
            eps = r.get("epsilon")
            private = eps not in (None, "inf")
            rows.append(dict(
                task=task, model=r["model"],
                eps="not private" if eps == "inf" else ("" if eps is None else eps),
                ndcg=_f(r["ndcg@10"]),
                kept="" if r.get("kept") is None else f"{100 * r['kept']:.0f}%",
                spent=_f(r.get("epsilon_"), ".3f") if private else "",
                noise=_f(r.get("noise_multiplier_"), ".3f") if private else "",
            ))
    out += [markdown_table(rows, [
        ("task", "task"), ("model", "model"), ("eps", "target epsilon"),
        ("ndcg", "NDCG@10"), ("kept", "of non-private"), ("spent", "epsilon_"),
        ("noise", "noise_multiplier_"),
    ]), "", _stamp(d)]
    return "\n".join(out)


def _peer_datasets(d):
    """``{variant: result}`` of ``peers.json``, one entry per MovieLens variant
    (an older file without ``"datasets"`` holds ML-100K alone)."""
    if "datasets" in d:
        return d["datasets"]
    return {"100k": {**d, "name": "MovieLens-100K"}}


def peers():
    d = _load("peers")
    d["_name"] = "peers"
    out = ["### Peers (`bench_peers.py`)"]
    for key, r in _peer_datasets(d).items():
        out += ["", f"#### {r.get('name', key)}", ""]
        if "skipped" in r:
            out.append(f"Not run: {r['skipped']}.")
            continue
        if "n_ratings" in r:
            out += [(f"{r['n_ratings']:,} ratings, {r['n_users']:,} users, "
                     f"{r['n_items']:,} items."), ""]
        out += [f"Ratings: {r['protocol']['ratings']}.", ""]
        rows = [{"model": x["model"], "settings": x.get("settings", ""),
                 "rmse": _f(x.get("rmse")), "fit": _f(x.get("fit_s"), ".1f"),
                 "cpu": _f(x.get("fit_cpu_s"), ".1f"), "status": x.get("status", "")}
                for x in r["ratings"]["rows"]]
        out.append(markdown_table(rows, [("model", "model"), ("settings", "settings"),
                                         ("rmse", "test RMSE"),
                                         ("fit", "fit wall (s)"),
                                         ("cpu", "fit CPU (s)"), ("status", "status")]))
        out += ["", f"Top-N: {r['protocol']['topn']}.", ""]
        rows = [{"model": x["model"], "settings": x.get("settings", ""),
                 "ndcg": _f(x.get("ndcg@10")), "recall": _f(x.get("recall@10")),
                 "hr": _f(x.get("hr@10")), "fit": _f(x.get("fit_s"), ".1f"),
                 "cpu": _f(x.get("fit_cpu_s"), ".1f"), "status": x.get("status", "")}
                for x in r["topn"]["rows"]]
        out.append(markdown_table(rows, [("model", "model"), ("settings", "settings"),
                                         ("ndcg", "NDCG@10"), ("recall", "Recall@10"),
                                         ("hr", "HR@10"), ("fit", "fit wall (s)"),
                                         ("cpu", "fit CPU (s)"), ("status", "status")]))
        out += ["", "Our models against the best peer (computed from the rows above):",
                ""]
        out += _margins(r["ratings"]["rows"], "rmse", "RMSE", lower_is_better=True)
        out += _margins(r["topn"]["rows"], "ndcg@10", "NDCG@10", lower_is_better=False)
    out += ["", _stamp(d)]
    return "\n".join(out)


def next_item():
    try:
        d = _load("next_item")
    except OSError:  # generate() words it the same way for the other sections
        return ("### next_item\n\nNo table: `results/next_item.json` is missing (run "
                "`benchmarks/bench_next_item.py`).")
    d["_name"] = "next_item"
    quick = " (`--quick` smoke run: numbers not meaningful)" if d.get(
        "settings", {}).get("quick") else ""
    out = [f"### Next item, defaults against peers (`bench_next_item.py`){quick}"]
    for key, r in d["datasets"].items():
        out += ["", f"#### {r.get('name', key)}", ""]
        if "skipped" in r:
            out.append(f"Not run: {r['skipped']}.")
            continue
        out += [(f"{r['n_interactions']:,} interactions, {r['n_users']:,} users, "
                 f"{r['n_items']:,} items; {r['n_train']:,} training rows, "
                 f"{r['n_test']:,} test items."), "", f"Protocol: {r['protocol']}.", ""]
        rows = [{"model": x["model"], "settings": x.get("settings", ""),
                 "ndcg": _f(x.get("ndcg@10")), "hr": _f(x.get("hr@10")),
                 "fit": _f(x.get("fit_s"), ".1f"), "cpu": _f(x.get("fit_cpu_s"), ".1f"),
                 "status": x.get("status", "")}
                for x in r["rows"]]
        out.append(markdown_table(rows, [("model", "model"), ("settings", "settings"),
                                         ("ndcg", "NDCG@10"), ("hr", "HR@10"),
                                         ("fit", "fit wall (s)"), ("cpu", "fit CPU (s)"),
                                         ("status", "status")]))
        if r.get("verdict"):
            out += ["", f"Verdict: {r['verdict']}"]
    out += ["", _stamp(d)]
    return "\n".join(out)


_VARIANT_NAMES = {"100k": "ML-100K", "latest-small": "latest-small"}


def _bench_constant(script, name):
    """The value of the module-level ``name = <literal>`` or ``name =
    dict(key=<literal>, ...)`` of ``script`` (read, not imported), or None
    where there is none."""
    try:
        tree = ast.parse((BENCH_DIR / script).read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == name):
            value = node.value
            try:
                if (isinstance(value, ast.Call) and getattr(value.func, "id", None) == "dict"
                        and not value.args):
                    return {k.arg: ast.literal_eval(k.value) for k in value.keywords}
                return ast.literal_eval(value)
            except ValueError:
                return None
    return None


def attributes():
    d = _load("attributes")
    d["_name"] = "attributes"
    env = d.get("environment", {})
    warp = _bench_constant("bench_attributes.py", "WARP") or {}
    lightfm = ", ".join(x for x in (
        f"{warp['no_components']} components" if "no_components" in warp else "",
        f"{warp['epochs']} epochs" if "epochs" in warp else "") if x)
    n_seeds = max((r.get("seeds", 1) for rows in (d.get("warm") or {}).values()
                   for r in rows), default=1)
    out = ["### User and item attributes (`bench_attributes.py`)", "",
           f"Machine: {env.get('cpu_model', '')} ({env.get('cpus_usable', '')} CPUs), "
           f"torch {env.get('torch', '')}, {env.get('torch_threads', '')} torch thread(s). "
           "Every rating is a positive; every model is scored by the same code, NDCG@10 "
           "(`sklearn_recsys.metrics.ndcg_at_k`) of its top-10 lists. Attributes: ML-100K "
           "users' age (numeric), gender, occupation and first digit of the zip code; "
           "items' genre indicators and release year (numeric, a missing year filled with "
           "the median year). Cold-start users (ML-100K): 20% of the users (seeded) held "
           "out entirely; the models train on the other users' interactions, with every "
           "user's attributes, and each held-out user's items are ranked among all items "
           "(the sequence models, seed 0, rank them from the state of their user token). "
           "Cold-start items: 20% of the items held out entirely; the models train on the "
           "other items' interactions, with every item's attributes, and for each user the "
           "held-out items they rated are ranked among the held-out items only. Warm: "
           "`UserHoldout(test_size=0.2, random_state=0)` as in `bench_peers.py`; "
           f"`MatrixFactorization(loss=\"softmax\")` and the attention model as mean ± "
           f"std over {f'seeds 0-{n_seeds - 1}' if n_seeds > 1 else 'seed 0'}. "
           "`id_dropout` was chosen on "
           "validation splits of the training data (`results/attributes_validation.json`), "
           "never on the test splits. LightFM: WARP"
           + (f" ({lightfm})" if lightfm else "")
           + ", one thread, given the feature matrix our encoder builds as "
           "`user_features`/`item_features`, with and without its per-id identity "
           "features. Command: `OMP_NUM_THREADS=1 python benchmarks/bench_attributes.py` "
           "(or one `--section` / `--datasets` at a time: each run replaces its own results; "
           "the runs behind this file are listed in its `runs`).",
           "", "Cold-start users, ML-100K:", ""]
    missing = "Not in this result file (`--section {}` was not run)."
    if d.get("cold_users"):
        rows = [dict(model=r["model"], ndcg=_f(r.get("ndcg")),
                     fit=_f(r.get("fit_s"), ".1f")) for r in d["cold_users"]]
        out.append(markdown_table(rows, [("model", "model"), ("ndcg", "NDCG@10"),
                                         ("fit", "fit wall (s)")]))
    else:
        out.append(missing.format("cold-users"))
    if d.get("cold_users_splits"):
        rows = [dict(model=r["model"], ndcg=f"{r['ndcg']:.4f} ± {r['ndcg_std']:.4f}",
                     per_split=", ".join(f"{x:.4f}" for x in r["ndcg_per_split"]))
                for r in d["cold_users_splits"]]
        n = d["cold_users_splits"][0]["splits"]
        out += ["", f"Cold-start users over the held-out users of seeds 0-{n - 1} "
                "(`--section cold-users-splits`; the first is the split above):", "",
                markdown_table(rows, [("model", "model"), ("ndcg", "NDCG@10 (mean ± std)"),
                                      ("per_split", "NDCG@10 per split")])]
    variants = list(d.get("cold_items") or {})
    names = {v: _VARIANT_NAMES.get(v, v) for v in variants}
    by_model = {}
    for v in variants:
        for r in d["cold_items"][v]:
            row = by_model.setdefault(r["model"], {"model": r["model"]})
            row[f"ndcg_{v}"] = _f(r.get("ndcg"))
            row[f"fit_{v}"] = _f(r.get("fit_s"), ".1f")
    columns = [("model", "model")]
    for v in variants:
        columns += [(f"ndcg_{v}", f"NDCG@10 {names[v]}"), (f"fit_{v}", f"fit (s) {names[v]}")]
    datasets = " and ".join(names.values()) or "ML-100K and latest-small"
    out += ["", f"Cold-start items, {datasets}:", "",
            markdown_table(list(by_model.values()), columns) if by_model
            else missing.format("cold-items")]
    rows = []
    for v, rs in (d.get("warm") or {}).items():
        for r in rs:
            several = r.get("seeds", 1) > 1 and r.get("ndcg_std") is not None
            rows.append(dict(
                data=_VARIANT_NAMES.get(v, v), model=r["model"],
                attributes=r.get("attributes", ""), seeds=r.get("seeds", ""),
                ndcg=(f"{r['ndcg']:.4f} ± {r['ndcg_std']:.4f}" if several
                      else _f(r.get("ndcg"))),
                per_seed=", ".join(f"{x:.4f}" for x in r.get("ndcg_per_seed") or []),
                fit=_f(r.get("fit_s"), ".1f")))
    out += ["", "Warm, with and without attributes:", "",
            markdown_table(rows, [("data", "data"), ("model", "model"),
                                  ("attributes", "attributes"), ("seeds", "seeds"),
                                  ("ndcg", "NDCG@10 (mean ± std over seeds)"),
                                  ("per_seed", "NDCG@10 per seed"),
                                  ("fit", "fit wall (s, mean per seed)")]) if rows
            else missing.format("warm")]
    rows = [dict(data=_VARIANT_NAMES.get(v, v), model=r["model"],
                 attributes=r.get("attributes", ""), fits=f"{r['splits']} x {r['seeds']}",
                 ndcg=f"{r['ndcg']:.4f} ± {r['ndcg_std']:.4f}",
                 per_split=", ".join(f"{x:.4f}" for x in r["ndcg_per_split"]))
            for v, rs in (d.get("warm_splits") or {}).items() for r in rs]
    if rows:
        out += ["", "Warm MF over the test splits of `UserHoldout(test_size=0.2, "
                "random_state=s)`, s = 0-2, each with seeds 0-2 (`--section warm-splits`):",
                "", markdown_table(rows, [
                    ("data", "data"), ("model", "model"), ("attributes", "attributes"),
                    ("fits", "splits x seeds"), ("ndcg", "NDCG@10 (mean ± std)"),
                    ("per_split", "NDCG@10 per split (mean over seeds)")])]
    out += ["", _stamp(d)]
    return "\n".join(out)


def _margins(rows, key, label, *, lower_is_better):
    ours = [r for r in rows if r["model"].startswith("sklearn_recsys") and key in r]
    peers = [r for r in rows if not r["model"].startswith("sklearn_recsys") and key in r]
    if not ours or not peers:
        return [f"- {label}: no peer measured."]
    pick = min if lower_is_better else max
    best = pick(peers, key=lambda r: r[key])
    lines = []
    for r in ours:
        diff = r[key] - best[key]
        better = diff < 0 if lower_is_better else diff > 0
        lines.append(
            f"- {label}: {r['model']} {r[key]:.4f} vs best peer {best['model']} "
            f"{best[key]:.4f}: {'better' if better else 'WORSE'} by {abs(diff):.4f}"
        )
    return lines


def overhead():
    d = _load("overhead")
    d["_name"] = "overhead"
    rows = [dict(model=r["model"], rows=f"{r['n_training_rows']:,}",
                 batch=r["batch_size"], plain=_f(r["plain_epoch_s"], ".3f"),
                 ours=_f(r["ours_epoch_s"], ".3f"), ratio=_f(r["ratio_wall"], ".3f"),
                 ratio_cpu=_f(r["ratio_cpu"], ".3f"),
                 ok="yes" if r["passed"] else "NO") for r in d["results"]]
    st = d["settings"]
    out = ["### Training overhead vs a plain PyTorch loop (`bench_overhead.py`)", "",
           f"Protocol: {d['protocol']}. Repetitions: "
           f"{1 if st.get('quick') else st['reps']}; target ratio <= "
           f"{st['target_ratio']}.", "",
           markdown_table(rows, [("model", "model"), ("rows", "training rows"),
                                 ("batch", "batch"), ("plain", "plain (s/epoch)"),
                                 ("ours", "ours (s/epoch)"),
                                 ("ratio", "ours/plain (wall)"),
                                 ("ratio_cpu", "ours/plain (CPU)"), ("ok", "<= 1.2")]),
           "", _stamp(d)]
    return "\n".join(out)


def scaling():
    d = _load("scaling")
    d["_name"] = "scaling"
    out = ["### Scaling (`bench_scaling.py`)", ""]
    for series, m in d["mf"].items():
        rows = [dict(n=f"{r['n_interactions']:,}", users=f"{r['n_users']:,}",
                     items=f"{r['n_items']:,}", solver=r.get("solver_used", "adam"),
                     epochs=r["epochs"],
                     epoch=_f(r["epoch_s"], ".3g"), sps=f"{r['samples_per_s']:,.0f}",
                     fit=_f(r["fit_s"], ".3g"), mem=_f(r["peak_mem_mb"], ".0f"))
                for r in m["rows"]]
        out += [f"MatrixFactorization (mse, 32 factors, batch 1024), series `{series}`: "
                f"{m['id_space']}, `solver={m.get('solver', 'adam')!r}`:", "",
                markdown_table(rows, [("n", "interactions"), ("users", "users"),
                                      ("items", "items"), ("solver", "solver used"),
                                      ("epochs", "epochs timed"),
                                      ("epoch", "s / epoch"), ("sps", "samples/s"),
                                      ("fit", "fit wall (s)"),
                                      ("mem", "peak RSS above start (MB)")]), "",
                f"Fitted exponents (least squares on log-log axes): time/epoch ~ "
                f"n^{m['exponents']['epoch_time']:.2f}; peak memory ~ "
                f"n^{m['exponents']['peak_memory']:.2f}.", ""]
    out.append("1e8 interactions (GPU): still to be measured.")
    e = d.get("ease") or {}
    if e.get("rows"):
        rows = [dict(items=f"{r['n_items']:,}", n=f"{r['n_interactions']:,}",
                     fit=_f(r["fit_s"], ".3g")) for r in e["rows"]]
        k, f = [r["n_items"] for r in e["rows"]], [r["fit_s"] for r in e["rows"]]
        note = f"EASE fit time ~ n_items^{e['exponent']:.2f} over the whole range"
        if len(k) > 2:
            note += (f", n_items^{loglog_exponent(k[-2:], f[-2:]):.2f} between the two "
                     "largest sizes (the cubic Gram-matrix inverse takes over)")
        out += ["", markdown_table(rows, [("items", "items"), ("n", "interactions"),
                                          ("fit", "EASE fit wall (s)")]), "", note + "."]
    if d.get("plot"):
        out += ["", "![scaling](results/scaling.png)"]
    out += ["", _stamp(d)]
    return "\n".join(out)


def _gpu_speedups(d):
    """Epoch-time speed-up of the device over the CPU, per neural estimator."""
    out = {}
    for r in d["results"]:
        cpu, dev = r.get("cpu", {}), r.get("device", {})
        if cpu.get("median_epoch_s") and dev.get("median_epoch_s"):
            out[r["estimator"]] = cpu["median_epoch_s"] / dev["median_epoch_s"]
    return out


def gpu():
    d = _load("gpu")
    d["_name"] = "gpu"
    rows = []
    for r in d["results"]:
        q, cpu, dev = r["quality"], r.get("cpu", {}), r.get("device", {})
        rows.append(dict(
            model=r["estimator"], data=r["dataset"], metric=r["metric"],
            cpu=_f(q["cpu"]), dev=_f(q["device"]), ok="yes" if r["ok"] else "NO",
            epoch_cpu=_f(cpu.get("median_epoch_s"), ".3f"),
            epoch_dev=_f(dev.get("median_epoch_s"), ".3f"),
            speed=f"{dev['train_samples_per_s']:,.0f}" if dev.get("train_samples_per_s") else "",
            mem=f"{dev.get('cuda_peak_mb', 0):.0f}",
            rec=_f(1000 * dev["recommend_s"], ".1f") if dev.get("recommend_s") else "",
        ))
    gpu_name = (d.get("gpu") or {}).get("name", "no GPU")
    out = [f"### GPU check (`gpu_check.py`, {gpu_name})", "",
           f"Every estimator fitted on the GPU and on the machine's CPU with the same "
           f"data and seed; quality must agree within "
           f"{d['settings']['tolerance']['rule']}. "
           f"{'All agree.' if d['passed'] else 'FAILED: ' + ', '.join(d['failures'])}", "",
           markdown_table(rows, [("model", "estimator"), ("data", "data"),
                                 ("metric", "metric"), ("cpu", "CPU"), ("dev", "GPU"),
                                 ("ok", "agree"), ("epoch_cpu", "epoch s (CPU)"),
                                 ("epoch_dev", "epoch s (GPU)"),
                                 ("speed", "samples/s (GPU)"), ("mem", "peak GPU MB"),
                                 ("rec", "recommend ms (GPU)")]),
           "", _stamp(d)]
    return "\n".join(out)


def large_catalogue():
    d = _load("large_catalogue")
    d["_name"] = "large_catalogue"
    env = d.get("environment", {})
    out = ["### Large catalogues: full vs sampled softmax (`bench_large_catalogue.py`)", "",
           f"Machine: {env.get('cpu_model', '')}, torch {env.get('torch', '')}, one thread. "
           f"One epoch of the package defaults on {d['interactions']:,} synthetic "
           f"interactions of {d['users']:,} users, Zipf-like item popularity; "
           "`sparse grads`: the item tables had sparse gradients (`solver=\"auto\"`); "
           "`x 10^4 items`: epoch time relative to the smallest catalogue.", ""]
    rows = [dict(model=r["model"], items=f"{r['n_items']:,}",
                 sparse="yes" if r.get("sparse_gradients") else "no",
                 epoch=_f(r["epoch_s"], ".1f"), rate=f"{r['interactions_per_s']:,}",
                 rss=r["peak_rss_mb"],
                 ratio=_f(r.get("time_ratio_vs_smallest"), ".2f"))
            for r in d["rows"]]
    out += [markdown_table(rows, [
        ("model", "model"), ("items", "items"), ("sparse", "sparse grads"),
        ("epoch", "epoch s"), ("rate", "interactions/s"), ("rss", "peak RSS MB"),
        ("ratio", "x 10^4 items"),
    ])]
    quality = d.get("quality") or []
    if quality:
        out += ["", "Accuracy at the defaults (NDCG@10 on the test splits: MF per-user "
                "80/20, attention leave-last-out):", ""]
        qrows = [dict(dataset=r["dataset"], model=r["model"], loss=r["loss"],
                      k=r["n_negatives"] if r["loss"] == "sampled_softmax" else "",
                      ndcg=_f(r["ndcg_at_10"]), fit=_f(r["fit_s"], ".1f"),
                      gap="" if r.get("relative_gap") is None
                      else f"{100 * r['relative_gap']:+.1f}%")
                 for r in quality]
        out += [markdown_table(qrows, [
            ("dataset", "dataset"), ("model", "model"), ("loss", "loss"),
            ("k", "n_negatives"), ("ndcg", "NDCG@10"), ("fit", "fit s"),
            ("gap", "gap vs full"),
        ])]
    out += ["", _stamp(d)]
    try:
        q = _load("sampled_softmax")
    except OSError:
        return "\n".join(out)
    q["_name"] = "sampled_softmax"
    out += ["", f"Over seeds {', '.join(map(str, q['seeds']))} (`bench_sampled_softmax.py`; "
            "the splits fixed, `random_state` varied; mean NDCG@10):", ""]
    out += [markdown_table([dict(
        dataset=r["dataset"], model=r["model"], seeds=r["seeds"], full=_f(r["softmax"]),
        sampled=_f(r["sampled_softmax"]), gap=f"{100 * r['relative_gap']:+.1f}%",
    ) for r in q["summary"]], [
        ("dataset", "dataset"), ("model", "model"), ("seeds", "seeds"),
        ("full", "softmax"), ("sampled", "sampled_softmax"), ("gap", "gap vs full"),
    ]), "", _stamp(q)]
    return "\n".join(out)


SECTIONS = [
    hardware, mf, baselines, sequential, next_item, cnn, peers, attributes, overhead,
    scaling, deploy, export, serve, privacy, large_catalogue, gpu,
]


def _pick(rows, prefix, key):
    """``key`` of the first row whose model starts with ``prefix``."""
    for r in rows:
        if r["model"].startswith(prefix) and r.get(key) is not None:
            return r[key]
    raise KeyError(f"no row for {prefix!r} with {key!r}")


def _find(rows, key, *parts):
    """``key`` of the first row whose model contains every one of ``parts``
    (a peer's version is not spelled out), or None when no row has it."""
    for r in rows:
        if all(part in r["model"] for part in parts) and r.get(key) is not None:
            return r[key]
    return None


def _joined(named):
    """``"name value, ..."`` of the ``(name, value)`` pairs that have a value."""
    return ", ".join(f"{name} {value:.3f}" for name, value in named if value is not None)


def _peer_headline_rows(result, label="", popularity=None):
    """The ratings and top-N rows of the top-level README for one dataset of
    ``peers.json``; our MF and EASE rows must be there, a missing peer is left
    out of its cell."""
    rat, top = result["ratings"]["rows"], result["topn"]["rows"]
    ours = "sklearn_recsys MatrixFactorization (defaults"
    svd = _find(rat, "rmse", "Surprise", "SVD (defaults")
    svd_tuned = _find(rat, "rmse", "Surprise", "SVD (tuned")
    svd = (f"Surprise SVD {svd:.3f} (default), {svd_tuned:.3f} (tuned)"
           if svd is not None and svd_tuned is not None else "")
    svdpp = _joined([("SVD++", _find(rat, "rmse", "Surprise", "SVD++"))])
    als = _joined([("ALS-WR (tuned)", _find(rat, "rmse", "ALS-WR"))])
    peers_rmse = "; ".join(x for x in (svd, svdpp, als) if x)
    peers_ndcg = _joined([
        ("LightFM WARP", _find(top, "ndcg@10", "LightFM", "WARP")),
        ("implicit ALS", _find(top, "ndcg@10", "implicit", "AlternatingLeastSquares")),
        ("implicit BPR", _find(top, "ndcg@10", "implicit", "BayesianPersonalized")),
        ("Popularity", popularity),
    ])
    mf = [(loss, _find(top, "ndcg@10", f"{ours}, loss={loss!r}"))
          for loss in ("softmax", "bpr", "bce")]  # softmax: absent from older files
    mf = ", ".join(f"{v:.3f} ({loss})" for loss, v in mf if v is not None)
    if not mf:
        raise KeyError("no MatrixFactorization top-N row in peers.json")
    return [
        {"task": f"ratings, RMSE (random 80/20){label}",
         "ours": f"MF {_pick(rat, ours, 'rmse'):.3f}",
         "peers": peers_rmse or "no peer measured"},
        {"task": f"top-N, NDCG@10 (per-user 80/20, full ranking){label}",
         "ours": f"MF {mf}; EASE {_pick(top, 'sklearn_recsys EASE', 'ndcg@10'):.3f}",
         "peers": peers_ndcg or "no peer measured"},
    ]


def _short_peer(model):
    """'implicit 0.7.3 AlternatingLeastSquares' -> 'implicit ALS' (headline)."""
    for long, short in (("AlternatingLeastSquares", "ALS"),
                        ("BayesianPersonalizedRanking", "BPR"),
                        ("sklearn_recsys ", ""), (" (defaults)", "")):
        model = model.replace(long, short)
    return re.sub(r" \d+(\.\d+)+", "", model)


def _next_item_headline_rows(sequential_scores):
    """Next item with the defaults against every peer (``bench_next_item.py``),
    or ``bench_sequential.py``'s figures when that file is missing."""
    try:
        d = _load("next_item")
    except OSError:
        s = sequential_scores
        return [dict(task="next item, NDCG@10 (leave-last-out)",
                     ours=f"Attention {s['attention']:.3f}, LSTM {s['lstm']:.3f}",
                     peers=f"Popularity {s['popularity']:.3f}")]
    rows = []
    for key, r in d["datasets"].items():
        if "skipped" in r:
            continue
        ndcg = {x["model"]: x["ndcg@10"] for x in r["rows"] if x.get("ndcg@10") is not None}
        ours = {m: v for m, v in ndcg.items() if m.startswith("sklearn_recsys") and (
            "Attention" in m or "LSTM" in m)}
        peers = sorted(((v, m) for m, v in ndcg.items() if m not in ours), reverse=True)
        label = "" if key == "100k" else f", {_VARIANT_NAMES.get(key, key)}"
        rows.append(dict(
            task=f"next item, NDCG@10 (leave-last-out, defaults){label}",
            ours=", ".join(f"{'Attention' if 'Attention' in m else 'LSTM'} {v:.3f}"
                           for m, v in ours.items()),
            peers=", ".join(f"{_short_peer(m)} {v:.3f}" for v, m in peers[:4]),
        ))
    return rows


def headline():
    """The results block of the top-level README, from the same JSON files."""
    p, seq, cnn_ = _load("peers"), _load("sequential"), _load("cnn")
    ov, base, attr = _load("overhead"), _load("baselines"), _load("attributes")
    by_dataset = _peer_datasets(p)
    s = {r["model"]: r["ndcg@10"] for r in seq["results"]}
    pop = {r["model"]: r["ndcg@10"] for r in base["movielens"]["results"]}
    digits = cnn_["digits_cold_start"]["ndcg@10_cold"]
    text = cnn_["ml100k_cold_start"]["ndcg@10_cold"]
    rows = _peer_headline_rows(by_dataset["100k"], popularity=pop["Popularity"])
    if "ratings" in by_dataset.get("latest-small", {}):
        rows += _peer_headline_rows(by_dataset["latest-small"], label=", latest-small")
    rows += _next_item_headline_rows(s)
    rows += [
        dict(task="cold-start items, NDCG@10",
             ours=f"CNN {digits['CNNRecommender']:.2f} (digits images), "
             f"{text['CNNRecommender (text)']:.3f} (ML-100K text)",
             peers=f"random {_pick_key(digits, 'random'):.2f} / "
             f"{_pick_key(text, 'random'):.3f}"),
    ]
    rows += _attribute_headline_rows(attr)
    worst = max(r["ratio_cpu"] for r in ov["results"])
    try:
        g = _load("gpu")
        speed = _gpu_speedups(g)
        gpu_line = (
            f"On an {g['gpu']['name']} (`benchmarks/gpu_check.py`, synthetic data, default "
            f"batch sizes) every estimator's quality matches its CPU fit"
            f"{'' if g['passed'] else ' EXCEPT ' + ', '.join(g['failures'])}; epoch time "
            f"{min(speed.values()):.1f}x to {max(speed.values()):.1f}x the speed of the "
            f"host's {g['environment'].get('torch_threads', 16)}-thread CPU "
            f"(slowest: {min(speed, key=speed.get)}; small default batches leave the "
            "GPU lightly loaded)."
        )
    except OSError:
        gpu_line = "GPU figures are still to be measured."
    try:
        lc = _load("large_catalogue")
        ratios = {r["model"]: r["time_ratio_vs_smallest"] for r in lc["rows"]
                  if r.get("time_ratio_vs_smallest") is not None}
        try:  # the gaps of the means over seeds, else seed 0's
            gaps = [r["relative_gap"] for r in _load("sampled_softmax")["summary"]]
            over = " (mean over seeds)"
        except OSError:
            gaps = [r["relative_gap"] for r in lc.get("quality", []) if "relative_gap" in r]
            over = ""
        large_line = (
            " Sampled softmax: an epoch over 10^6 items costs "
            + ", ".join(f"{v:.2f}x ({k.split()[0]})" for k, v in ratios.items())
            + " the 10^4-item one at equal interactions"
            + (f"; NDCG@10 at most {100 * max(gaps):.1f}% below the full softmax{over} on "
               "ML-100K and latest-small." if gaps else ".")
        )
    except (OSError, KeyError):
        large_line = ""
    return "\n".join([
        ("## Results (MovieLens-100K unless noted, 2-core CPU; details in "
         "`benchmarks/README.md`)"),
        "",
        markdown_table(rows, [("task", "task (protocol)"), ("ours", "ours"),
                              ("peers", "peers / baselines")]),
        "",
        f"Training through skorch costs at most {worst:.2f}x a plain PyTorch loop over "
        f"the same module (CPU time, every model). {gpu_line}{large_line}",
    ])


def _best(rows, prefix):
    """The row with the highest NDCG of those whose model starts with ``prefix``."""
    rows = [r for r in rows if r["model"].startswith(prefix) and r.get("ndcg") is not None]
    if not rows:
        raise KeyError(f"no {prefix!r} row with an NDCG in attributes.json")
    return max(rows, key=lambda r: r["ndcg"])


def _short(model):
    """``"name, setting"`` as ``"name (setting)"``, for a cell that lists values."""
    name, _, setting = model.partition(", ")
    return f"{name} ({setting})" if setting else name


def _per_dataset(picked):
    """``"name v1 / v2"`` of one row per data set (``"name1 v1 / name2 v2"`` where
    the rows are of different models)."""
    names = [_short(r["model"]) for r in picked]
    if len(set(names)) == 1:
        return f"{names[0]} " + " / ".join(f"{r['ndcg']:.3f}" for r in picked)
    return " / ".join(f"{n} {r['ndcg']:.3f}" for n, r in zip(names, picked))


def _attribute_headline_rows(d):
    """The cold-start rows of the top-level README from ``attributes.json``."""
    users = d["cold_users"]
    items = d["cold_items"]
    variants = [v for v in ("100k", "latest-small") if v in items]
    best = {prefix: [_best(items[v], prefix) for v in variants]
            for prefix in ("MF", "LightFM", "Random")}
    random_ = " / ".join(f"{r['ndcg']:.3f}" for r in best["Random"])
    lightfm = _best(users, "LightFM")
    ours = (f"MF softmax + user attributes "
            f"{_pick(users, 'MF softmax + user attributes', 'ndcg'):.3f}")
    peers = _joined([("Popularity", _pick(users, "Popularity", "ndcg")),
                     (lightfm["model"], lightfm["ndcg"])])
    splits = d.get("cold_users_splits")
    if splits:  # the same models' means over several held-out splits
        n = splits[0]["splits"]
        lightfm_splits = _best(splits, "LightFM")
        ours += (f" (mean of {n} splits "
                 f"{_pick(splits, 'MF softmax + user attributes', 'ndcg'):.3f})")
        peers += (f" (mean of {n} splits: {_pick(splits, 'Popularity', 'ndcg'):.3f}, "
                  f"{lightfm_splits['ndcg']:.3f})")
    return [
        dict(task="cold-start users (attributes), NDCG@10", ours=ours, peers=peers),
        dict(task="cold-start items (attributes), NDCG@10, "
             + " / ".join(_VARIANT_NAMES.get(v, v) for v in variants),
             ours=_per_dataset(best["MF"]),
             peers=f"{_per_dataset(best['LightFM'])}; random {random_}"),
    ]


def _pick_key(scores, prefix):
    return next(v for k, v in scores.items() if k.startswith(prefix))


def _replace_between_markers(path, block):
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} lacks the {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n\n{block}\n\n{END}{tail}")


def generate():
    parts = []
    for section in SECTIONS:
        try:
            parts.append(section())
        except OSError:
            parts.append(f"### {section.__name__}\n\nNo table: "
                         f"`results/{section.__name__}.json` is missing (run "
                         f"`benchmarks/bench_{section.__name__}.py`).")
        except (ValueError, KeyError, TypeError) as exc:
            parts.append(f"### {section.__name__}\n\nNo table: the result file "
                         f"has an unexpected layout ({type(exc).__name__}: {exc}).")
    return "\n\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print", action="store_true",
                        help="print the tables instead of rewriting the READMEs")
    args = parser.parse_args(argv)
    tables = generate()
    summary = headline()
    if args.print:
        print(f"{summary}\n\n{tables}")
        return 0
    _replace_between_markers(BENCH_DIR / "README.md", tables)
    _replace_between_markers(BENCH_DIR.parent / "README.md", summary)
    print("Tables regenerated in benchmarks/README.md and the results block of README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
