"""Tests of sklearn_recsys.metrics against straightforward loop references."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sklearn_recsys.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)
from sklearn_recsys import _ranking
from sklearn_recsys._ranking import _per_user_metric_from_topk

METRICS = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}


# --------------------------------------------------------------------------
# Reference implementations: Python loops, textbook definitions
# --------------------------------------------------------------------------


def ref_ranking(scores, excluded, k):
    """Top-k item indices of one user (by decreasing score), excluded removed."""
    items = [i for i in range(len(scores)) if i not in excluded]
    items.sort(key=lambda i: -scores[i])
    return items[:k]


def ref_metric(metric, ranked, relevant, k):
    """Metric of one top-k list ``ranked`` given the set ``relevant``."""
    if not relevant:
        return math.nan
    rel = [1 if item in relevant else 0 for item in ranked]
    rel += [0] * (k - len(rel))
    hits = sum(rel)
    if metric == "ndcg":
        dcg = sum(r / math.log2(pos + 2) for pos, r in enumerate(rel))
        idcg = sum(1 / math.log2(pos + 2) for pos in range(min(k, len(relevant))))
        return dcg / idcg
    if metric == "recall":
        return hits / len(relevant)
    if metric == "precision":
        return hits / k
    if metric == "hit_rate":
        return float(hits > 0)
    if metric == "mrr":
        for pos, r in enumerate(rel):
            if r:
                return 1 / (pos + 1)
        return 0.0
    if metric == "map":
        total, n_hits = 0.0, 0
        for pos, r in enumerate(rel):
            if r:
                n_hits += 1
                total += n_hits / (pos + 1)
        return total / min(k, len(relevant))
    raise ValueError(metric)


def ref_per_user(metric, y_true, y_score, k, exclude=None):
    y_true = np.asarray(y_true.todense() if sp.issparse(y_true) else y_true)
    if exclude is not None:
        exclude = np.asarray(exclude.todense() if sp.issparse(exclude) else exclude)
    out = []
    for u in range(y_true.shape[0]):
        excluded = set() if exclude is None else set(np.flatnonzero(exclude[u]))
        relevant = set(np.flatnonzero(y_true[u] > 0)) - excluded
        ranked = ref_ranking(y_score[u], excluded, k)
        out.append(ref_metric(metric, ranked, relevant, k))
    return np.array(out)


def make_data(seed, n_users=23, n_items=17, density=0.2, exclude_density=0.15):
    rng = np.random.RandomState(seed)
    # graded relevance: entries > 0 are relevant, some explicit 0 / negatives
    y_true = rng.randint(-1, 4, size=(n_users, n_items)) * (
        rng.rand(n_users, n_items) < density
    )
    y_true[0] = 0  # a user without relevant item
    y_true[1] = 0
    y_true[1, :3] = 2  # few relevant items (k > |relevant| below)
    y_score = rng.randn(n_users, n_items)  # continuous: no ties
    exclude = rng.rand(n_users, n_items) < exclude_density
    exclude[2] = y_true[2] > 0  # all relevant items of user 2 excluded
    return y_true, y_score, exclude


# --------------------------------------------------------------------------
# Full ranking vs reference
# --------------------------------------------------------------------------


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5, 17])
@pytest.mark.parametrize("with_exclude", [False, True])
def test_metric_matches_reference(metric, seed, k, with_exclude):
    y_true, y_score, exclude = make_data(seed)
    if not with_exclude:
        exclude = None
    expected = ref_per_user(metric, y_true, y_score, k, exclude)
    func = METRICS[metric]

    per_user = func(y_true, y_score, k=k, exclude=exclude, average=False)
    assert per_user.dtype == np.float64 and per_user.shape == (y_true.shape[0],)
    np.testing.assert_allclose(per_user, expected, rtol=0, atol=1e-9)
    assert np.isnan(per_user[0])

    mean = func(y_true, y_score, k=k, exclude=exclude)
    assert isinstance(mean, float)
    np.testing.assert_allclose(mean, np.nanmean(expected), rtol=0, atol=1e-9)

    zero = func(y_true, y_score, k=k, exclude=exclude, empty="zero")
    np.testing.assert_allclose(
        zero, np.nan_to_num(expected, nan=0.0).mean(), rtol=0, atol=1e-9
    )
    zero_per_user = func(
        y_true, y_score, k=k, exclude=exclude, empty="zero", average=False
    )
    np.testing.assert_allclose(
        zero_per_user, np.nan_to_num(expected, nan=0.0), rtol=0, atol=1e-9
    )


@pytest.mark.parametrize(
    "fmt", ["csr_matrix", "csc_matrix", "coo_array", "lil_matrix", "dok_array"]
)
@pytest.mark.parametrize("metric", ["ndcg", "map", "mrr"])
def test_sparse_inputs_match_dense(fmt, metric):
    y_true, y_score, exclude = make_data(3)
    expected = ref_per_user(metric, y_true, y_score, 4, exclude)
    to_sparse = getattr(sp, fmt)
    got = METRICS[metric](
        to_sparse(y_true), y_score, k=4, exclude=to_sparse(exclude), average=False
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_sparse_duplicates_and_explicit_zeros():
    # COO duplicates are summed before thresholding; explicit zeros ignored.
    y_true = sp.coo_array(
        (np.array([1, -1, 0.0, 2]), (np.array([0, 0, 0, 1]), np.array([0, 0, 1, 2]))),
        shape=(2, 3),
    )
    y_score = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    # user 0: item 0 sums to 0 -> not relevant; item 1 explicit 0 -> no relevant
    got = hit_rate_at_k(y_true, y_score, k=1, average=False)
    np.testing.assert_array_equal(got, [np.nan, 1.0])


def test_torch_and_float32_scores():
    y_true, y_score, exclude = make_data(4)
    expected = ref_per_user("ndcg", y_true, y_score, 5, exclude)
    kw = dict(k=5, exclude=exclude, average=False)
    got = ndcg_at_k(y_true, torch.from_numpy(y_score), **kw)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # float32 scores: same order (no ties created for these values)
    y32 = y_score.astype(np.float32)
    expected32 = ref_per_user("ndcg", y_true, y32, 5, exclude)
    got32 = ndcg_at_k(y_true, y32, **kw)
    np.testing.assert_allclose(got32, expected32, rtol=0, atol=1e-9)
    got_t32 = ndcg_at_k(y_true, torch.from_numpy(y32), **kw)
    np.testing.assert_allclose(got_t32, expected32, rtol=0, atol=1e-9)


def test_input_not_modified():
    y_true, y_score, exclude = make_data(5)
    scores_np, scores_t = y_score.copy(), torch.from_numpy(y_score.copy())
    ndcg_at_k(y_true, scores_np, k=3, exclude=exclude, n_negatives=2, random_state=0)
    ndcg_at_k(y_true, scores_t, k=3, exclude=exclude)
    np.testing.assert_array_equal(scores_np, y_score)
    np.testing.assert_array_equal(scores_t.numpy(), y_score)


def test_chunking_does_not_change_results(monkeypatch):
    y_true, y_score, exclude = make_data(6, n_users=40)
    full = {
        name: func(y_true, y_score, k=4, exclude=exclude, average=False)
        for name, func in METRICS.items()
    }
    sampled = ndcg_at_k(
        y_true, y_score, k=4, exclude=exclude, n_negatives=5, random_state=3,
        average=False,
    )
    monkeypatch.setattr(_ranking, "_CHUNK_ELEMENTS", 3 * y_true.shape[1])  # 3 users
    for name, func in METRICS.items():
        got = func(y_true, y_score, k=4, exclude=exclude, average=False)
        np.testing.assert_array_equal(got, full[name])
    got = ndcg_at_k(
        y_true, y_score, k=4, exclude=exclude, n_negatives=5, random_state=3,
        average=False,
    )
    np.testing.assert_array_equal(got, sampled)


def test_fewer_rankable_items_than_k():
    # user 0 has only 2 non-excluded items: positions 3.. are empty
    y_true = np.array([[1, 0, 0, 1], [0, 1, 1, 0]])
    y_score = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    exclude = np.array([[0, 1, 1, 0], [0, 0, 0, 0]])
    kw = dict(k=4, exclude=exclude, average=False)
    assert precision_at_k(y_true, y_score, **kw)[0] == 0.5
    assert ndcg_at_k(y_true, y_score, **kw)[0] == 1.0


def test_minus_inf_scores_are_never_recommended():
    y_true = np.array([[1, 0, 1, 0]])
    y_score = np.array([[-np.inf, 0.5, -np.inf, np.inf]])
    # only items 1 and 3 can be ranked; the rest of the list is empty
    assert hit_rate_at_k(y_true, y_score, k=4) == 0.0
    scores = torch.tensor(y_score, requires_grad=True)
    assert recall_at_k(y_true, scores, k=2) == 0.0


def test_all_users_empty():
    y_true = np.zeros((3, 5))
    y_score = np.arange(15.0).reshape(3, 5)
    with pytest.raises(ValueError, match="No user has a relevant item"):
        ndcg_at_k(y_true, y_score, k=2)
    assert ndcg_at_k(y_true, y_score, k=2, empty="zero") == 0.0
    assert np.isnan(ndcg_at_k(y_true, y_score, k=2, average=False)).all()
    # emptied by exclusion
    with pytest.raises(ValueError, match="No user has a relevant item"):
        recall_at_k(np.eye(3), np.ones((3, 3)), k=1, exclude=np.eye(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    y_true, y_score, exclude = make_data(7)
    for func in METRICS.values():
        cpu = func(y_true, y_score, k=5, exclude=exclude, average=False)
        gpu = func(y_true, y_score, k=5, exclude=exclude, average=False, device="cuda")
        np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-9)
    kw = dict(k=5, exclude=exclude, n_negatives=4, random_state=0, average=False)
    np.testing.assert_allclose(
        ndcg_at_k(y_true, y_score, device="cuda", **kw),
        ndcg_at_k(y_true, y_score, **kw),
        rtol=0,
        atol=1e-9,
    )


# --------------------------------------------------------------------------
# Score ties: lower item index first
# --------------------------------------------------------------------------


def make_tied_data(seed, n_users=23, n_items=17):
    """make_data with integer scores in 0..3: ties everywhere."""
    y_true, _, exclude = make_data(seed, n_users=n_users, n_items=n_items)
    y_score = np.random.RandomState(seed + 100).randint(0, 4, size=y_true.shape)
    return y_true, y_score, exclude


def test_tied_scores_rank_lower_item_index_first():
    # regression: all-equal scores over 5 items, relevant item at index 2:
    # items 0, 1, 2 are recommended, the hit is at rank 3
    y_true = np.array([[0, 0, 1, 0, 0]])
    y_score = np.ones((1, 5))
    assert ndcg_at_k(y_true, y_score, k=3) == pytest.approx(0.5, abs=1e-12)
    assert ndcg_at_k(y_true, torch.zeros(1, 5), k=3) == pytest.approx(0.5, abs=1e-12)
    assert mrr_at_k(y_true, y_score, k=3) == pytest.approx(1 / 3, abs=1e-12)
    assert map_at_k(y_true, y_score, k=3) == pytest.approx(1 / 3, abs=1e-12)
    assert hit_rate_at_k(y_true, y_score, k=2) == 0.0
    assert recall_at_k(y_true, y_score, k=2) == 0.0
    # excluding item 0 moves the hit to rank 2
    exclude = np.array([[1, 0, 0, 0, 0]])
    assert ndcg_at_k(y_true, y_score, k=3, exclude=exclude) == pytest.approx(
        1 / math.log2(3), abs=1e-12
    )
    # a tie below a higher score: item 4 first, then 0, 1, 2
    y_score = np.array([[1.0, 1.0, 1.0, 1.0, 2.0]])
    assert mrr_at_k(y_true, y_score, k=5) == pytest.approx(1 / 4, abs=1e-12)


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5, 17])
@pytest.mark.parametrize("with_exclude", [False, True])
def test_metric_matches_reference_with_tied_scores(metric, seed, k, with_exclude):
    # ref_ranking sorts stably by decreasing score: lower index first in ties
    y_true, y_score, exclude = make_tied_data(seed)
    if not with_exclude:
        exclude = None
    expected = ref_per_user(metric, y_true, y_score, k, exclude)
    func = METRICS[metric]
    for scores in (y_score, y_score.astype(np.float32), torch.tensor(y_score)):
        per_user = func(y_true, scores, k=k, exclude=exclude, average=False)
        np.testing.assert_allclose(per_user, expected, rtol=0, atol=1e-9)


def test_tied_scores_chunking_does_not_change_results(monkeypatch):
    y_true, y_score, exclude = make_tied_data(3, n_users=40)
    full = {
        name: func(y_true, y_score, k=4, exclude=exclude, average=False)
        for name, func in METRICS.items()
    }
    monkeypatch.setattr(_ranking, "_CHUNK_ELEMENTS", 3 * y_true.shape[1])  # 3 users
    for name, func in METRICS.items():
        got = func(y_true, y_score, k=4, exclude=exclude, average=False)
        np.testing.assert_array_equal(got, full[name])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_tied_scores():
    y_true, y_score, exclude = make_tied_data(7)
    # the rankings are identical...
    for n_negatives in (None, 4):
        relevant, scores, excluded = _ranking._check_ranking_inputs(
            y_true, y_score, 5, exclude, n_negatives
        )
        items = {
            device: np.concatenate([
                chunk.cpu().numpy()
                for _, _, chunk in _ranking._iter_topk(
                    relevant, scores, excluded, 5, n_negatives,
                    _ranking._sampling_rng(0), torch.device(device),
                )
            ])
            for device in ("cpu", "cuda")
        }
        np.testing.assert_array_equal(items["cuda"], items["cpu"])
    # ... so the metrics agree up to the rounding of their sums
    for func in METRICS.values():
        for k in (1, 5, 17):
            cpu = func(y_true, y_score, k=k, exclude=exclude, average=False)
            gpu = func(
                y_true, y_score, k=k, exclude=exclude, average=False, device="cuda"
            )
            np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-12)
        kw = dict(k=5, exclude=exclude, n_negatives=4, random_state=0, average=False)
        np.testing.assert_allclose(
            func(y_true, y_score, device="cuda", **kw),
            func(y_true, y_score, **kw),
            rtol=0,
            atol=1e-12,
        )


# --------------------------------------------------------------------------
# Sampled-negative protocol
# --------------------------------------------------------------------------


def _sampled_topk(y_true, y_score, exclude, k, n_negatives, seed):
    relevant, scores, excluded = _ranking._check_ranking_inputs(
        y_true, y_score, k, exclude, n_negatives
    )
    rng = _ranking._sampling_rng(seed)
    chunks = _ranking._iter_topk(
        relevant, scores, excluded, k, n_negatives, rng, torch.device("cpu")
    )
    return np.concatenate([items.numpy() for _, _, items in chunks])


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_only_relevant_and_sampled_items(seed):
    y_true, y_score, exclude = make_data(seed)
    n_items = y_true.shape[1]
    n_neg = 4
    topk = _sampled_topk(y_true, y_score, exclude, n_items, n_neg, seed)
    values = {
        name: func(
            y_true, y_score, k=5, exclude=exclude, n_negatives=n_neg,
            random_state=seed, average=False,
        )
        for name, func in METRICS.items()
    }
    for u in range(y_true.shape[0]):
        excluded = set(np.flatnonzero(exclude[u]))
        relevant = set(np.flatnonzero(y_true[u] > 0)) - excluded
        ranked = [i for i in topk[u] if i >= 0]
        assert len(ranked) == len(set(ranked))
        assert not set(ranked) & excluded
        # with k = n_items every relevant item and exactly n_neg negatives
        assert relevant <= set(ranked)
        assert len(set(ranked) - relevant) == n_neg
        # ranked by decreasing score, padded with -1 at the end
        assert list(topk[u][: len(ranked)]) == ref_ranking(
            y_score[u], set(range(n_items)) - set(ranked), n_items
        )
        assert (topk[u][len(ranked) :] == -1).all()
        # the metric is the reference metric of that restricted ranking
        for name in METRICS:
            expected = ref_metric(name, ranked[:5], relevant, 5)
            np.testing.assert_allclose(values[name][u], expected, rtol=0, atol=1e-9)


def test_sampled_deterministic():
    y_true, y_score, exclude = make_data(8)
    kw = dict(k=3, exclude=exclude, n_negatives=3, average=False)
    a = ndcg_at_k(y_true, y_score, random_state=42, **kw)
    b = ndcg_at_k(y_true, y_score, random_state=42, **kw)
    c = ndcg_at_k(y_true, y_score, random_state=np.random.RandomState(42), **kw)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    others = [ndcg_at_k(y_true, y_score, random_state=s, **kw) for s in range(5)]
    assert any(not np.array_equal(a, o, equal_nan=True) for o in others)


def test_sampled_all_candidates_equals_full_ranking():
    y_true, y_score, _ = make_data(9)
    n_items = y_true.shape[1]
    # same number of candidates for every user: exclude nothing, make every
    # user have exactly 3 relevant items
    rng = np.random.RandomState(0)
    y_true = np.zeros_like(y_true)
    for u in range(y_true.shape[0]):
        y_true[u, rng.choice(n_items, 3, replace=False)] = 1
    for name, func in METRICS.items():
        full = func(y_true, y_score, k=5, average=False)
        sampled = func(
            y_true, y_score, k=5, n_negatives=n_items - 3, random_state=0,
            average=False,
        )
        np.testing.assert_allclose(sampled, full, rtol=0, atol=1e-9)


def test_sampled_tied_scores_lower_item_index_first():
    # ranked candidates are ordered by item index within a tie, whatever the
    # order in which the negatives were drawn
    y_true, y_score, exclude = make_tied_data(4)
    n_items = y_true.shape[1]
    for seed in range(3):
        topk = _sampled_topk(y_true, y_score, exclude, n_items, 4, seed)
        for u in range(y_true.shape[0]):
            ranked = [i for i in topk[u] if i >= 0]
            assert ranked == ref_ranking(
                y_score[u], set(range(n_items)) - set(ranked), n_items
            )


def test_sampled_all_candidates_equals_full_ranking_with_tied_scores():
    y_true, y_score, _ = make_tied_data(9)
    n_items = y_true.shape[1]
    rng = np.random.RandomState(0)
    y_true = np.zeros_like(y_true)
    for u in range(y_true.shape[0]):
        y_true[u, rng.choice(n_items, 3, replace=False)] = 1
    for name, func in METRICS.items():
        for k in (1, 5):
            full = func(y_true, y_score, k=k, average=False)
            sampled = func(
                y_true, y_score, k=k, n_negatives=n_items - 3, random_state=0,
                average=False,
            )
            np.testing.assert_array_equal(sampled, full)


def test_sampled_zero_negatives_is_perfect():
    y_true, y_score, exclude = make_data(10)
    got = ndcg_at_k(y_true, y_score, k=5, exclude=exclude, n_negatives=0)
    assert got == pytest.approx(1.0, abs=1e-12)


def test_sampled_too_many_negatives():
    y_true, y_score, exclude = make_data(11)
    with pytest.raises(ValueError, match="larger than the number of candidate"):
        ndcg_at_k(y_true, y_score, exclude=exclude, k=3, n_negatives=17)


# --------------------------------------------------------------------------
# _per_user_metric_from_topk
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("metric", list(METRICS))
def test_per_user_metric_from_topk(seed, metric):
    rng = np.random.RandomState(seed)
    n_users, n_items, k = 19, 12, 6
    y_true = sp.random(
        n_users, n_items, density=0.25, format="csr", random_state=rng
    )
    y_true.data[:] = 1.0
    topk = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    topk[rng.rand(n_users, k) < 0.2] = -1  # missing positions
    dense = y_true.toarray()
    expected = [
        ref_metric(metric, list(topk[u]), set(np.flatnonzero(dense[u])), k)
        for u in range(n_users)
    ]
    got = _per_user_metric_from_topk(metric, topk, y_true, k)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    got_t = _per_user_metric_from_topk(metric, torch.from_numpy(topk), y_true, k)
    np.testing.assert_allclose(got_t, expected, rtol=0, atol=1e-9)
    # shorter lists are padded with -1
    short = _per_user_metric_from_topk(metric, topk[:, :4], y_true, k)
    padded = np.where(np.arange(k) < 4, topk, -1)
    expected_short = [
        ref_metric(metric, list(padded[u]), set(np.flatnonzero(dense[u])), k)
        for u in range(n_users)
    ]
    np.testing.assert_allclose(short, expected_short, rtol=0, atol=1e-9)


def test_per_user_metric_from_topk_duplicates_and_errors():
    y_true = sp.csr_array(np.array([[1, 1, 0, 0], [0, 0, 1, 0]]))
    topk = np.array([[0, 0, 1], [2, 2, 2]])
    # repeated items count once, at their best rank
    got = _per_user_metric_from_topk("precision", topk, y_true, 3)
    np.testing.assert_allclose(got, [2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="Unknown metric"):
        _per_user_metric_from_topk("auc", topk, y_true, 3)
    with pytest.raises(ValueError, match="item indices"):
        _per_user_metric_from_topk("ndcg", topk + 5, y_true, 3)
    with pytest.raises(ValueError, match="shape"):
        _per_user_metric_from_topk("ndcg", topk[:1], y_true, 3)
    with pytest.raises(ValueError, match="positive integer"):
        _per_user_metric_from_topk("ndcg", topk, y_true, 0)
    with pytest.raises(TypeError, match="integers"):
        _per_user_metric_from_topk("ndcg", topk.astype(float), y_true, 3)


def test_public_metrics_agree_with_topk_core():
    y_true, y_score, exclude = make_data(12)
    k = 4
    masked = np.where(exclude, -np.inf, y_score)
    topk = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    relevant = np.where(exclude, 0, y_true)
    for name, func in METRICS.items():
        np.testing.assert_allclose(
            func(y_true, y_score, k=k, exclude=exclude, average=False),
            _per_user_metric_from_topk(name, topk, relevant, k),
            rtol=0,
            atol=1e-9,
        )


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def test_validation_errors():
    y_true = np.array([[1, 0, 0], [0, 1, 0]])
    y_score = np.random.RandomState(0).rand(2, 3)
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3\).*\(2, 4\)"):
        ndcg_at_k(y_true, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="y_score must be 2D"):
        ndcg_at_k(y_true, np.zeros(6), k=1)
    with pytest.raises(ValueError, match="y_true must be 2D"):
        ndcg_at_k(np.zeros(3), np.zeros((1, 3)), k=1)
    with pytest.raises(ValueError, match="larger than the number of items"):
        ndcg_at_k(y_true, y_score, k=4)
    with pytest.raises(ValueError, match="'k' parameter"):
        ndcg_at_k(y_true, y_score, k=0)
    with pytest.raises(ValueError, match="'k' parameter"):
        ndcg_at_k(y_true, y_score, k=1.5)
    with pytest.raises(ValueError, match="'empty' parameter"):
        ndcg_at_k(y_true, y_score, k=1, empty="nan")
    with pytest.raises(ValueError, match="'n_negatives' parameter"):
        ndcg_at_k(y_true, y_score, k=1, n_negatives=-1)
    with pytest.raises(ValueError, match="y_score contains NaN"):
        ndcg_at_k(y_true, np.array([[0.1, np.nan, 0.2], [0.0, 1.0, 2.0]]), k=1)
    with pytest.raises(ValueError, match="y_true contains NaN"):
        ndcg_at_k(np.array([[np.nan, 1, 0], [0, 1, 0]]), y_score, k=1)
    with pytest.raises(ValueError, match="0 users"):
        ndcg_at_k(np.zeros((0, 3)), np.zeros((0, 3)), k=1)
    with pytest.raises(ValueError, match="exclude must have the same shape"):
        ndcg_at_k(y_true, y_score, k=1, exclude=np.zeros((2, 2)))
    with pytest.raises(TypeError, match="sparse"):
        ndcg_at_k(y_true, sp.csr_array(y_score), k=1)
    with pytest.raises(TypeError, match="numeric"):
        ndcg_at_k(y_true, np.array([["a", "b", "c"], ["d", "e", "f"]]), k=1)
    with pytest.raises(ValueError, match="Invalid device"):
        ndcg_at_k(y_true, y_score, k=1, device="not-a-device")


# --------------------------------------------------------------------------
# Beyond-accuracy metrics
# --------------------------------------------------------------------------


def test_catalog_coverage():
    recs = np.array([[0, 3, -1], [3, 4, 0], [-1, -1, -1]])
    assert catalog_coverage(recs, n_items=8) == 3 / 8
    assert catalog_coverage(torch.from_numpy(recs), n_items=3 + 2) == 3 / 5
    assert catalog_coverage([[-1]], n_items=4) == 0.0
    with pytest.raises(ValueError, match="item indices"):
        catalog_coverage(recs, n_items=4)
    with pytest.raises(ValueError, match="2D"):
        catalog_coverage([0, 1], n_items=4)
    with pytest.raises(TypeError, match="integer"):
        catalog_coverage([[0.0, 1.0]], n_items=4)
    with pytest.raises(ValueError, match="'n_items' parameter"):
        catalog_coverage(recs, n_items=0)


def test_novelty():
    popularity = np.array([8, 4, 2, 1, 1])  # p = 1/2, 1/4, 1/8, 1/16, 1/16
    recs = np.array([[0, 1], [2, 3], [4, -1], [-1, -1]])
    # per-user means: (1 + 2) / 2, (3 + 4) / 2, 4 ; user 3 has no item
    expected = (1.5 + 3.5 + 4.0) / 3
    assert novelty(recs, popularity) == pytest.approx(expected, abs=1e-12)
    # only the ratios matter
    assert novelty(recs, popularity * 3.0) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="popularity is 0"):
        novelty(recs, np.array([8, 4, 2, 1, 0]))
    assert np.isfinite(novelty(recs, np.array([8, 4, 2, 1, 0]) + 1))
    with pytest.raises(ValueError, match="non-negative"):
        novelty(recs, -popularity)
    with pytest.raises(ValueError, match="1D"):
        novelty(recs, popularity[None])
    with pytest.raises(ValueError, match="item indices"):
        novelty(recs, popularity[:3])
    with pytest.raises(ValueError, match="no item"):
        novelty([[-1, -1]], popularity)
