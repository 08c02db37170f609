"""Tests of sklearn_recsys._topk.topk against a plain-Python reference."""

import math
import zlib

import numpy as np
import pytest
import torch

from sklearn_recsys import _topk
from sklearn_recsys._topk import topk

DTYPES = [torch.float32, torch.float64]


def ref_topk(scores, k):
    """Indices of the k best entries of each row: score desc., then index asc."""
    return [
        sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        for row in scores.tolist()
    ]


def ks_for(n_cols):
    return sorted({0, 1, 2, n_cols // 2, n_cols - 1, n_cols} & set(range(n_cols + 1)))


def tied_scores(rng, shape, kind):
    """Score matrices with many ties of different kinds."""
    n_rows, n_cols = shape
    if kind == "int0..3":  # a handful of distinct values, plus -inf
        s = rng.integers(0, 4, size=shape).astype(np.float64)
        s[rng.random(shape) < 0.2] = -np.inf
    elif kind == "constant":
        s = np.full(shape, 0.5)
    elif kind == "all -inf":
        s = np.full(shape, -np.inf)
    elif kind == "signed zeros":  # -0.0 == 0.0
        s = rng.choice([-0.0, 0.0, 1.0, -np.inf], size=shape, p=[0.4, 0.4, 0.1, 0.1])
    elif kind == "rare ties":  # distinct values, a few tied ones far apart
        s = rng.standard_normal(shape)
        for row in s:
            n_tied = min(n_cols, rng.integers(1, 12))
            cols = rng.choice(n_cols, size=n_tied, replace=False)
            row[cols] = rng.choice([row.max(), np.median(row), 0.0])
    else:  # pragma: no cover
        raise ValueError(kind)
    return s


def check_against_reference(scores, k):
    values, indices = topk(scores, k)
    n_rows = scores.shape[0]
    assert values.shape == indices.shape == (n_rows, k)
    assert values.dtype == scores.dtype and indices.dtype == torch.int64
    assert values.device == indices.device == scores.device
    assert indices.tolist() == ref_topk(scores.cpu(), k)
    # values are the scores of the returned entries, bit for bit
    expected = torch.gather(scores, 1, indices)
    assert torch.equal(values, expected)
    assert torch.equal(torch.signbit(values), torch.signbit(expected))
    if k > 1:
        assert bool((values[:, 1:] <= values[:, :-1]).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape", [(1, 1), (7, 1), (1, 5), (5, 4), (13, 17), (9, 64), (6, 300), (3, 2100)]
)
@pytest.mark.parametrize(
    "kind", ["int0..3", "constant", "all -inf", "signed zeros", "rare ties"]
)
def test_matches_reference_with_many_ties(dtype, shape, kind):
    rng = np.random.default_rng(zlib.crc32(repr((shape, kind)).encode()))
    for _ in range(3):
        scores = torch.tensor(tied_scores(rng, shape, kind), dtype=dtype)
        for k in ks_for(shape[1]):
            check_against_reference(scores, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference_random_shapes(dtype):
    rng = np.random.default_rng(0)
    for _ in range(200):
        shape = (int(rng.integers(1, 9)), int(rng.integers(1, 40)))
        s = rng.integers(0, 4, size=shape).astype(np.float64)
        s[rng.random(shape) < 0.2] = -np.inf
        scores = torch.tensor(s, dtype=dtype)
        check_against_reference(scores, int(rng.integers(0, shape[1] + 1)))


def test_all_equal_scores_lower_index_first():
    values, indices = topk(torch.zeros(3, 5), 3)
    assert indices.tolist() == [[0, 1, 2]] * 3
    assert values.tolist() == [[0.0] * 3] * 3
    _, indices = topk(torch.full((2, 6), -math.inf), 6)
    assert indices.tolist() == [list(range(6))] * 2


def test_ties_found_late_in_long_rows(monkeypatch):
    """Tied entries at the k-th position found in each of the growing
    prefixes (256, 2048 columns, whole row), with the re-selection
    processed in chunks of rows."""
    monkeypatch.setattr(_topk, "_CHUNK_ELEMENTS", 5000)
    rng = np.random.default_rng(1)
    n_rows, n_cols = 45, 6000
    s = rng.random((n_rows, n_cols)) - 2.0  # all below -1
    for i, row in enumerate(s):
        # 11 zeros: one early, 10 in the first 256, the first 2048 columns,
        # at the end of the row, or anywhere
        lo, hi = [(0, 256), (256, 2048), (n_cols - 10, n_cols), (300, n_cols)][i % 4]
        row[rng.choice(np.arange(lo, hi), 10, replace=False)] = 0.0
        row[int(rng.integers(0, 256))] = 0.0
    s[::3, 5] = 1.0  # some rows with one larger value
    for dtype in DTYPES:
        scores = torch.tensor(s, dtype=dtype)
        for k in (1, 10, 11, 12):
            check_against_reference(scores, k)


def test_k_equals_n_cols_is_a_stable_sort():
    rng = np.random.default_rng(2)
    s = torch.tensor(rng.integers(0, 3, size=(20, 50)), dtype=torch.float64)
    values, indices = topk(s, 50)
    expected = torch.sort(s, dim=1, descending=True, stable=True)
    assert torch.equal(indices, expected.indices)
    assert torch.equal(values, expected.values)


@pytest.mark.parametrize("k", [0, 3])
def test_zero_rows(k):
    values, indices = topk(torch.empty((0, 3), dtype=torch.float64), k)
    assert values.shape == indices.shape == (0, k)
    assert values.dtype == torch.float64 and indices.dtype == torch.int64


def test_k_zero():
    values, indices = topk(torch.ones((4, 3)), 0)
    assert values.shape == indices.shape == (4, 0)
    assert indices.dtype == torch.int64


def test_integer_half_and_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    s = rng.integers(-2, 3, size=(30, 25))
    for dtype in [torch.int64, torch.int32, torch.float16, torch.bfloat16]:
        check_against_reference(torch.tensor(s, dtype=dtype), 7)
    scores = torch.tensor(s, dtype=torch.float32).t().contiguous().t()  # a view
    assert not scores.is_contiguous()
    check_against_reference(scores, 7)


def test_input_not_modified():
    scores = torch.zeros(4, 300)
    scores[:, 250:] = 1.0
    scores[:, 10] = 1.0
    before = scores.clone()
    topk(scores, 20)
    assert torch.equal(scores, before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("k", [0, 1, 3, 8])
@pytest.mark.parametrize("where", ["first", "middle", "last", "in -inf row"])
def test_nan_raises(dtype, k, where):
    """NaN policy: a NaN anywhere (even where it would not be selected) raises."""
    scores = torch.arange(32, dtype=torch.float64).reshape(4, 8).to(dtype)
    if where == "in -inf row":
        scores[2] = -math.inf
        scores[2, 4] = math.nan
    else:
        col = {"first": 0, "middle": 3, "last": 7}[where]
        scores[1, col] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        topk(scores, k)


def test_validation_errors():
    with pytest.raises(TypeError, match="torch.Tensor"):
        topk(np.zeros((2, 3)), 1)
    with pytest.raises(TypeError, match="real-valued"):
        topk(torch.zeros((2, 3), dtype=torch.bool), 1)
    with pytest.raises(TypeError, match="real-valued"):
        topk(torch.zeros((2, 3), dtype=torch.complex64), 1)
    with pytest.raises(ValueError, match="2-D"):
        topk(torch.zeros(3), 1)
    for k in [4, -1, 1.0, True, None]:
        with pytest.raises(ValueError, match="k must be an integer"):
            topk(torch.zeros((2, 3)), k)
    # numpy integers are accepted
    assert topk(torch.zeros((2, 3)), np.int64(2))[1].shape == (2, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_cuda_identical_to_cpu():
    rng = np.random.default_rng(4)
    cases = [
        (tied_scores(rng, shape, kind), k)
        for shape in [(13, 17), (64, 1000), (8, 50_000)]
        for kind in ["int0..3", "constant", "signed zeros", "rare ties"]
        for k in ks_for(shape[1])
    ]
    ramp = np.tile(np.repeat(np.arange(40, dtype=np.float64), 25), (16, 1))
    cases += [(ramp, k) for k in (1, 10, 37, 500)]  # 25-way ties everywhere
    for s, k in cases:
        for dtype in DTYPES:
            scores = torch.tensor(s, dtype=dtype)
            values_cpu, indices_cpu = topk(scores, k)
            values_gpu, indices_gpu = topk(scores.cuda(), k)
            assert values_gpu.is_cuda and indices_gpu.is_cuda
            assert torch.equal(indices_gpu.cpu(), indices_cpu)
            assert torch.equal(values_gpu.cpu(), values_cpu)
            signs = torch.signbit(values_gpu).cpu()
            assert torch.equal(signs, torch.signbit(values_cpu))
            if scores.shape[1] <= 1000:
                assert indices_cpu.tolist() == ref_topk(scores, k)
    for col in [0, 500, 49_999]:  # the NaN policy holds on CUDA too
        scores = torch.zeros((3, 50_000), device="cuda")
        scores[1, col] = math.nan
        with pytest.raises(ValueError, match="NaN"):
            topk(scores, 10)
