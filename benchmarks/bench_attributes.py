"""User and item attributes: warm accuracy, cold-start users, cold-start items.

Side by side on the same splits and the same metric code
(:func:`sklearn_recsys.metrics.ndcg_at_k` on the top-10 lists of every
model): ``MatrixFactorization(loss="softmax")`` with and without
:class:`~sklearn_recsys.Attributes`, ``Popularity``, random scores, and
LightFM WARP with the same features (the feature matrix our encoder builds,
given to LightFM as ``user_features``/``item_features``, with and without
LightFM's per-id identity features). Every rating is a positive.

Attributes: ML-100K users ``u.user`` (age numeric, gender, occupation, first
digit of the zip code, categorical); items (ML-100K ``u.item``, ML
latest-small ``movies.csv``) the genre indicator columns (binary) and the
release year (numeric, a missing year filled with the median year).

Sections (``--section``, default all):

* ``cold-users`` (ML-100K): 20% of the users (seeded) held out entirely; the
  models train on the others' interactions, with every user's attributes;
  each held-out user's items are ranked among all items (none seen). The
  sequence models (seed 0) rank them from the state of the user token.
* ``cold-items`` (ML-100K and latest-small): 20% of the items held out
  entirely; the models train on the other items' interactions, with every
  item's attributes; for each user, the held-out items they rated are ranked
  among the held-out items only.
* ``warm`` (ML-100K and latest-small): ``UserHoldout(test_size=0.2,
  random_state=0)`` as ``bench_peers.py``; MF and the attention model
  without attributes, with item attributes, and with user and item
  attributes where the data set has user attributes (ML-100K): mean and
  standard deviation over seeds 0-2 (the differences are of the order of
  the seed-to-seed spread).
* ``warm-splits`` (not part of ``all``): MF without attributes, with item
  attributes, and with user and item attributes, over the warm test splits
  of ``UserHoldout`` seeds 0-2 (each with model seeds 0-2): one split moves
  NDCG@10 as much as the attributes do.
* ``cold-users-splits`` (not part of ``all``): the cold-user protocol
  (Popularity, MF, LightFM; not the sequence models) over the held-out
  users of seeds 0-4: one split of about 190 users moves NDCG@10 by
  +-0.02.
* ``validation``: the choice of ``id_dropout``: the cold-user protocol on a
  validation split of the ML-100K training users, the cold-item protocol on
  a validation split of the training items of both data sets, and the warm
  protocol on an inner holdout of both training sets -- the test splits
  above are never used to choose.

Usage (from the repository root; one thread)::

    OMP_NUM_THREADS=1 python benchmarks/bench_attributes.py
    OMP_NUM_THREADS=1 python benchmarks/bench_attributes.py --section validation
    OMP_NUM_THREADS=1 python benchmarks/bench_attributes.py --section warm --datasets latest-small
    OMP_NUM_THREADS=1 python benchmarks/bench_attributes.py --quick  # ML-100K, 1 seed, no attention

A run of some sections or data sets replaces their results only.

Results: markdown tables on stdout and ``benchmarks/results/attributes.json``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from _harness import (
    RESULTS_DIR,
    Timer,
    add_common_arguments,
    describe_environment,
    format_environment,
    load_movielens,
    print_table,
    set_threads,
    write_json,
)
from sklearn_recsys import (
    AttentionRecommender,
    Attributes,
    LSTMRecommender,
    MatrixFactorization,
    Popularity,
)
from sklearn_recsys._attributes import AttributeEncoder
from sklearn_recsys.metrics import ndcg_at_k
from sklearn_recsys.model_selection import UserHoldout

K = 10
WARP = dict(no_components=64, loss="warp", epochs=30)
# Settings compared on the validation splits (the package defaults are the
# first of each list; id_dropout=1 is the pure attribute model, whose
# alpha="auto" is the chosen one of ALPHAS_ATTRIBUTES).
ID_DROPOUTS = [0.0, 0.25, 0.5]
ALPHAS_ATTRIBUTES = [0.01, 0.03, 0.1]
COLD_ITEM_MODELS = [
    ("MF softmax + item attributes", {}),
    ("MF softmax + item attributes, id_dropout=1", {"id_dropout": 1.0}),
]


# -- data ----------------------------------------------------------------------------


def user_attributes(bunch):
    if bunch.user_info is None:
        return None
    users = bunch.user_info.copy()
    users["zip"] = users["zip"].astype(str).str[:1]
    return Attributes(users)


def item_attributes(bunch):
    items = bunch.item_info.drop(columns=["title"]).copy()
    items["year"] = items["year"].fillna(items["year"].median())
    return Attributes(items)


def hold_out(ids, fraction, seed):
    rng = np.random.RandomState(seed)
    ids = np.asarray(ids)
    held = rng.choice(ids, int(round(fraction * len(ids))), replace=False)
    return np.setdiff1d(ids, held), held


# -- the one metric --------------------------------------------------------------------


def ndcg_of_lists(top_ids, test, users, items):
    """NDCG@10 of top-10 lists ``top_ids`` (raw ids, one row per user of ``users``).

    ``items`` is the candidate item space; ``test`` the relevant (user, item)
    rows. The lists become score matrices (10 for the first item, 9...).
    """
    item_index = pd.Index(items)
    user_index = pd.Index(users)
    n_users, n_items = len(users), len(items)
    scores = np.full((n_users, n_items), -np.inf, dtype=np.float32)
    cols = item_index.get_indexer(top_ids.ravel()).reshape(top_ids.shape)
    rows = np.repeat(np.arange(n_users), top_ids.shape[1])
    ok = cols.ravel() >= 0
    scores[rows[ok], cols.ravel()[ok]] = np.tile(
        np.arange(top_ids.shape[1], 0, -1), n_users
    )[ok]
    relevance = np.zeros((n_users, n_items), dtype=np.float32)
    relevance[user_index.get_indexer(test["user"]), item_index.get_indexer(test["item"])] = 1
    return float(ndcg_at_k(relevance, torch.as_tensor(scores), k=K))


# -- LightFM with the same features ----------------------------------------------------


def feature_matrix(attributes, ids):
    """Our encoder's features as a CSR (rows = ``ids``), for LightFM."""
    encoder = AttributeEncoder(attributes)
    index, weight = encoder.encode(attributes, encoder.width)
    pos = pd.Index(attributes.ids).get_indexer(ids)
    rows = np.repeat(np.arange(len(ids)), encoder.width)
    idx, w = index[pos].ravel(), weight[pos].ravel()
    keep = idx < encoder.n_features
    return sp.csr_matrix((w[keep], (rows[keep], idx[keep])),
                         shape=(len(ids), encoder.n_features), dtype=np.float32)


def lightfm_topk(train, users, items, user_features=None, item_features=None,
                 identity=True, candidates=None, seed=0):
    """Top-10 lists of LightFM WARP fitted on ``train``, for every user of ``users``.

    Every candidate is ranked (the cold protocols: the users have seen none).
    """
    from lightfm import LightFM

    u_index, i_index = pd.Index(users), pd.Index(items)
    interactions = sp.coo_matrix(
        (np.ones(len(train), dtype=np.float32),
         (u_index.get_indexer(train["user"]), i_index.get_indexer(train["item"]))),
        shape=(len(users), len(items)),
    )

    def with_identity(features, n):
        if features is None:
            return None
        if not identity:
            return features
        return sp.hstack([sp.identity(n, format="csr"), features]).tocsr()

    uf = with_identity(user_features, len(users))
    itf = with_identity(item_features, len(items))
    model = LightFM(no_components=WARP["no_components"], loss=WARP["loss"], random_state=seed)
    with Timer() as t:
        model.fit(interactions, user_features=uf, item_features=itf, epochs=WARP["epochs"],
                  num_threads=1)
    cand = np.arange(len(items)) if candidates is None else i_index.get_indexer(candidates)
    tops = []
    for u in range(len(users)):
        s = model.predict(u, cand.astype(np.int32), user_features=uf, item_features=itf,
                          num_threads=1)
        tops.append(np.asarray(items)[cand[np.argsort(-s, kind="stable")[:K]]])
    return np.array(tops), t


def lightfm_rows(side, features, train, test, users, items, test_users, candidates):
    """LightFM WARP with ``side``'s features, with and without identity features."""
    rows = []
    for identity in (True, False):
        top, t = lightfm_topk(
            train, users, items, identity=identity, **{f"{side}_features": features},
            candidates=None if side == "user" else candidates,
        )
        pos = pd.Index(users).get_indexer(test_users)
        rows.append(dict(
            model=f"LightFM WARP + {side} features{' + identity' if identity else ''}",
            ndcg=ndcg_of_lists(top[pos], test, test_users, candidates), fit_s=t.elapsed))
        print(rows[-1], flush=True)
    return rows


def fit_ours(est, train, name):
    with Timer() as t:
        est.fit(train[["user", "item"]])
    return est, t


# -- sections -------------------------------------------------------------------------


def cold_users(bunch, dropouts=(None,), seed=0, validation=False, lightfm=True,
               sequences=True):
    """Rows of the cold-user protocol (users held out entirely)."""
    X = bunch.interactions[["user", "item"]]
    users = np.unique(X["user"])
    train_users, test_users = hold_out(users, 0.2, seed)
    if validation:  # a split of the training users only
        train_users, test_users = hold_out(train_users, 0.2, seed + 1)
        users = np.union1d(train_users, test_users)
    train = X[X["user"].isin(train_users)]
    test = X[X["user"].isin(test_users)]
    items = np.unique(X["item"])
    ua = Attributes(bunch.user_info.loc[users].assign(
        zip=bunch.user_info.loc[users, "zip"].astype(str).str[:1]))
    rows = []
    if not validation:
        pop = Popularity().fit(train)
        rows.append(dict(model="Popularity",
                         ndcg=ndcg_of_lists(pop.recommend(test_users, K)[0], test,
                                            test_users, items)))
    for p in dropouts:
        params = {} if p is None else {"id_dropout": p}
        mf, t = fit_ours(MatrixFactorization(loss="softmax", user_attributes=ua,
                                             random_state=seed, **params), train, "mf")
        rows.append(dict(model="MF softmax + user attributes", id_dropout=mf.id_dropout,
                         ndcg=ndcg_of_lists(mf.recommend(test_users, K)[0], test,
                                            test_users, items), fit_s=t.elapsed))
        print(rows[-1], flush=True)
    if sequences and not validation:
        # the sequence models read the held-out users' attribute tokens alone
        timed = bunch.interactions.loc[train.index, ["user", "item", "timestamp"]]
        for cls in (AttentionRecommender, LSTMRecommender):
            est = cls(time_col="timestamp", user_attributes=ua, random_state=seed)
            with Timer() as t:
                est.fit(timed)
            rows.append(dict(model=f"{SHORT[cls]} + user attributes",
                             ndcg=ndcg_of_lists(est.recommend(test_users, K)[0], test,
                                                test_users, items), fit_s=t.elapsed))
            print(rows[-1], flush=True)
    if lightfm and not validation:
        rows += lightfm_rows("user", feature_matrix(ua, users), train, test, users, items,
                             test_users, items)
    return rows


SHORT = {AttentionRecommender: "Attention", LSTMRecommender: "LSTM"}


def cold_items(bunch, configs=COLD_ITEM_MODELS, seed=0, validation=False, lightfm=True):
    """Rows of the cold-item protocol (items held out entirely)."""
    X = bunch.interactions[["user", "item"]]
    items = np.unique(X["item"])
    train_items, test_items = hold_out(items, 0.2, seed)
    if validation:
        train_items, test_items = hold_out(train_items, 0.2, seed + 1)
        items = np.union1d(train_items, test_items)
        X = X[X["item"].isin(items)]
    train = X[X["item"].isin(train_items)]
    test = X[X["item"].isin(test_items)]
    test_users = np.unique(test["user"])
    users = np.unique(X["user"])
    info = bunch.item_info.drop(columns=["title"]).loc[items].copy()
    info["year"] = info["year"].fillna(bunch.item_info["year"].median())
    ia = Attributes(info)
    rows = []
    if not validation:
        rng = np.random.RandomState(seed)
        random_top = np.array([rng.permutation(test_items)[:K] for _ in test_users])
        rows.append(dict(model="Random", ndcg=ndcg_of_lists(random_top, test, test_users,
                                                           test_items)))
    for name, params in configs:
        mf, t = fit_ours(MatrixFactorization(loss="softmax", item_attributes=ia,
                                             random_state=seed, **params), train, "mf")
        top = mf.recommend(test_users, K, items=test_items)[0]
        rows.append(dict(model=name, settings=str(params),
                         ndcg=ndcg_of_lists(top, test, test_users, test_items),
                         fit_s=t.elapsed))
        print(rows[-1], flush=True)
    if lightfm and not validation:
        rows += lightfm_rows("item", feature_matrix(ia, items), train, test, users, items,
                             test_users, test_items)
    return rows


def warm(bunch, variant, dropouts=(None,), seeds=(0, 1, 2), validation=False,
         attention=True):
    """MF and attention (means over ``seeds``) with and without attributes."""
    X = bunch.interactions[["user", "item"]]
    a, b = next(UserHoldout(test_size=0.2, random_state=0).split(X))
    train, test = X.iloc[a], X.iloc[b]
    if validation:
        a, b = next(UserHoldout(test_size=0.2, random_state=1).split(train))
        train, test = train.iloc[a], train.iloc[b]
    users = np.unique(test["user"])
    items = np.unique(X["item"])
    ia = item_attributes(bunch)
    ua = user_attributes(bunch)
    rows = []
    sides = [{"item_attributes": ia}]
    if ua is not None:
        sides.append({"user_attributes": ua, "item_attributes": ia})
    configs = [("MF softmax", {})]
    for p in dropouts:
        extra = {} if p is None else {"id_dropout": p}
        configs += [("MF softmax + attributes", dict(**side, **extra)) for side in sides]
    factory = lambda params, seed: MatrixFactorization(  # noqa: E731
        loss="softmax", random_state=seed, **params)
    for name, params in configs:
        rows.append(_over_seeds(name, params, factory, train, test, users, items, seeds))
    if attention:
        tr = bunch.interactions.loc[train.index, ["user", "item", "timestamp"]]
        factory = lambda params, seed: AttentionRecommender(  # noqa: E731
            time_col="timestamp", random_state=seed, **params)
        for params in [{}, *sides]:
            name = "Attention" + (" + attributes" if params else "")
            rows.append(_over_seeds(name, params, factory, tr, test, users, items, seeds))
    return rows


def warm_splits(bunch, splits=(0, 1, 2), seeds=(0, 1, 2)):
    """MF with and without attributes over several warm test splits.

    One split's NDCG@10 moves with the split as much as attributes move it:
    ``UserHoldout(test_size=0.2, random_state=s)`` for each ``s`` of
    ``splits``, every seed of ``seeds`` on each; the mean over all fits,
    their std, and each split's mean over the seeds.
    """
    X = bunch.interactions[["user", "item"]]
    items = np.unique(X["item"])
    ia, ua = item_attributes(bunch), user_attributes(bunch)
    configs = [("MF softmax", {}), ("MF softmax + attributes", {"item_attributes": ia})]
    if ua is not None:
        configs.append(("MF softmax + attributes",
                        {"user_attributes": ua, "item_attributes": ia}))
    parts = []
    for split in splits:
        a, b = next(UserHoldout(test_size=0.2, random_state=split).split(X))
        parts.append((X.iloc[a], X.iloc[b], np.unique(X.iloc[b]["user"])))
    rows = []
    for name, params in configs:
        per_split = [
            [ndcg_of_lists(MatrixFactorization(loss="softmax", random_state=seed, **params)
                           .fit(train).recommend(users, K)[0], test, users, items)
             for seed in seeds]
            for train, test, users in parts
        ]
        row = dict(model=name, attributes=_describe(params), splits=len(splits),
                   seeds=len(seeds), ndcg=float(np.mean(per_split)),
                   ndcg_std=float(np.std(per_split)),
                   ndcg_per_split=[round(float(np.mean(v)), 4) for v in per_split])
        print(row, flush=True)
        rows.append(row)
    return rows


def cold_user_splits(bunch, splits=(0, 1, 2, 3, 4)):
    """The cold-user rows (sequence models aside) over several held-out splits.

    ``cold_users(bunch, seed=s)`` for each ``s`` of ``splits``: per model,
    the mean NDCG@10 over the splits, its std and each split's figure.
    """
    per_model = {}
    for split in splits:
        for r in cold_users(bunch, seed=split, sequences=False):
            per_model.setdefault(r["model"], []).append(r["ndcg"])
    rows = [dict(model=name, splits=len(v), ndcg=float(np.mean(v)), ndcg_std=float(np.std(v)),
                 ndcg_per_split=[round(x, 4) for x in v]) for name, v in per_model.items()]
    for row in rows:
        print(row, flush=True)
    return rows


def _over_seeds(name, params, factory, train, test, users, items, seeds):
    """The row of one configuration: NDCG@10 mean, std and per seed."""
    scores, times = [], []
    for seed in seeds:
        est = factory(params, seed)
        with Timer() as t:
            est.fit(train)
        scores.append(ndcg_of_lists(est.recommend(users, K)[0], test, users, items))
        times.append(t.elapsed)
    row = dict(model=name, attributes=_describe(params), seeds=len(seeds),
               ndcg=float(np.mean(scores)), ndcg_std=float(np.std(scores)),
               ndcg_per_seed=[round(v, 4) for v in scores], fit_s=float(np.mean(times)))
    print(row, flush=True)
    return row


def _describe(params):
    sides = [k.split("_")[0] for k in ("user_attributes", "item_attributes")
             if params.get(k) is not None]
    extra = {k: v for k, v in params.items() if not k.endswith("_attributes")}
    return " + ".join(sides) + (f" {extra}" if extra else "") if sides else "none"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["all", "cold-users", "cold-items", "warm",
                                              "warm-splits", "cold-users-splits", "validation"],
                        default="all")
    parser.add_argument("--datasets", nargs="+", choices=["100k", "latest-small"],
                        help="data sets of the cold-item and warm sections (default: "
                             "both); the results of the others are kept")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    env = describe_environment()
    print(format_environment(env), flush=True)
    variants = ("100k",) if args.quick else tuple(args.datasets or ("100k", "latest-small"))
    data = {v: load_movielens(v, args.data_home) for v in {"100k", *variants}}
    seeds = (0,) if args.quick else (0, 1, 2)
    if data["100k"] is None:
        return 0
    out = {"environment": env}
    if args.section == "validation":
        rows = []
        for r in cold_users(data["100k"], ID_DROPOUTS, validation=True):
            rows.append(dict(protocol="cold users", dataset="100k", **r))
        configs = [("MF softmax + item attributes", {"id_dropout": p}) for p in ID_DROPOUTS]
        configs += [("MF softmax + item attributes", {"id_dropout": 1.0, "alpha": a})
                    for a in ALPHAS_ATTRIBUTES]
        for variant, bunch in data.items():
            if bunch is None:
                continue
            for r in cold_items(bunch, configs, validation=True):
                rows.append(dict(protocol="cold items", dataset=variant, **r))
            for r in warm(bunch, variant, ID_DROPOUTS, seeds=(0,), validation=True,
                          attention=False):
                rows.append(dict(protocol="warm", dataset=variant, **r))
        print_table("Validation: id_dropout, and alpha of id_dropout=1", rows, columns=[
            "protocol", "dataset", "model", "id_dropout", "settings", "attributes", "ndcg",
        ])
        write_json("attributes_validation", {"environment": env, "rows": rows},
                   path=args.output)
        return 0
    out["cold_items"], out["warm"] = {}, {}
    if args.section == "warm-splits":
        out["warm_splits"] = {}
        for variant in variants:
            if data[variant] is not None:
                out["warm_splits"][variant] = warm_splits(data[variant], seeds=seeds)
                print_table(f"Warm over splits, {variant} (NDCG@10)",
                            out["warm_splits"][variant])
    if args.section == "cold-users-splits":
        out["cold_users_splits"] = cold_user_splits(data["100k"])
        print_table("Cold-start users over held-out splits, ML-100K (NDCG@10)",
                    out["cold_users_splits"])
    if args.section in ("all", "cold-users"):
        out["cold_users"] = cold_users(data["100k"], sequences=not args.quick)
        print_table("Cold-start users, ML-100K (NDCG@10)", out["cold_users"])
    for variant in variants:
        bunch = data[variant]
        if bunch is None:
            continue
        if args.section in ("all", "cold-items"):
            out["cold_items"][variant] = cold_items(bunch)
            print_table(f"Cold-start items, {variant} (NDCG@10)", out["cold_items"][variant])
        if args.section in ("all", "warm"):
            out["warm"][variant] = warm(bunch, variant, seeds=seeds, attention=not args.quick)
            print_table(f"Warm, {variant} (NDCG@10)", out["warm"][variant])
    write_json("attributes", _merged(out, args), path=args.output)
    return 0


def _merged(out, args):
    """``out`` over the results already written: a run of some sections or data
    sets replaces those only (each run's command is listed in ``runs``)."""
    path = Path(args.output) if args.output else RESULTS_DIR / "attributes.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    keys = ("cold_items", "warm", "warm_splits")
    merged = {k: old[k] for k in ("cold_users", "cold_users_splits", *keys, "runs")
              if k in old}
    merged.update({k: v for k, v in out.items() if k not in keys})
    for key in keys:
        merged[key] = {**merged.get(key, {}), **out.get(key, {})}
    run = {
        "command": " ".join(["python", *sys.argv]), "section": args.section,
        "datasets": list(out["cold_items"] or out["warm"] or out.get("warm_splits", {})),
    }
    merged["runs"] = [*_still_shown(merged.get("runs", []), run), run]
    return merged


def _still_shown(runs, new):
    """The earlier ``runs`` whose results ``new`` does not replace."""
    def replaced(run):
        return new["section"] == "all" or (
            run["section"] == new["section"] and set(run["datasets"]) <= set(new["datasets"])
        )
    return [run for run in runs if not replaced(run)]


if __name__ == "__main__":
    sys.exit(main())
