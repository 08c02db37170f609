"""SparseDenseAdam: the optimizer behind MatrixFactorization(solver="sparse_adam")."""

import pickle

import pytest
import torch
from torch import nn

from sklearn_recsys.nn import SparseDenseAdam


def _problem(sparse):
    torch.manual_seed(0)
    emb = nn.Embedding(50, 4, sparse=sparse)
    dense = nn.Parameter(torch.randn(3))
    return emb, dense


def _train(emb, dense, optimizers, steps=25):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        rows = torch.randint(50, (16,), generator=g)  # repeated rows included
        for opt in optimizers:
            opt.zero_grad()
        ((emb(rows) ** 2).sum() * dense.sum() + (dense**3).sum()).backward()
        for opt in optimizers:
            opt.step()


def test_dense_gradients_follow_torch_adam():
    emb, dense = _problem(sparse=False)
    ref_emb, ref_dense = _problem(sparse=False)
    _train(emb, dense, [SparseDenseAdam([emb.weight, dense], lr=0.05)])
    _train(ref_emb, ref_dense, [torch.optim.Adam([ref_emb.weight, ref_dense], lr=0.05)])
    torch.testing.assert_close(emb.weight, ref_emb.weight)
    torch.testing.assert_close(dense, ref_dense)


def test_sparse_gradients_follow_torch_sparse_adam_and_stay_lazy():
    emb, dense = _problem(sparse=True)
    ref_emb, ref_dense = _problem(sparse=True)
    start = emb.weight.detach().clone()
    opt = SparseDenseAdam([emb.weight, dense], lr=0.05, betas=(0.8, 0.99))
    _train(emb, dense, [opt], steps=1)
    _train(ref_emb, ref_dense, [
        torch.optim.SparseAdam([ref_emb.weight], lr=0.05, betas=(0.8, 0.99)),
        torch.optim.Adam([ref_dense], lr=0.05, betas=(0.8, 0.99)),
    ], steps=1)
    torch.testing.assert_close(emb.weight, ref_emb.weight)
    torch.testing.assert_close(dense, ref_dense)
    moved = (emb.weight != start).any(dim=1)
    assert 0 < int(moved.sum()) <= 16  # only the batch's rows moved
    assert torch.equal(opt.state[emb.weight]["exp_avg"][~moved], torch.zeros(int((~moved).sum()), 4))


def test_many_steps_match_the_torch_pair():
    emb, dense = _problem(sparse=True)
    ref_emb, ref_dense = _problem(sparse=True)
    _train(emb, dense, [SparseDenseAdam([emb.weight, dense], lr=0.05)])
    _train(ref_emb, ref_dense, [
        torch.optim.SparseAdam([ref_emb.weight], lr=0.05),
        torch.optim.Adam([ref_dense], lr=0.05),
    ])
    torch.testing.assert_close(emb.weight, ref_emb.weight)
    torch.testing.assert_close(dense, ref_dense)


def test_weight_decay_dense_as_torch_adam_sparse_on_the_batch_rows_only():
    emb, dense = _problem(sparse=False)
    ref_emb, ref_dense = _problem(sparse=False)
    _train(emb, dense, [SparseDenseAdam([emb.weight, dense], lr=0.05, weight_decay=0.1)])
    _train(ref_emb, ref_dense, [
        torch.optim.Adam([ref_emb.weight, ref_dense], lr=0.05, weight_decay=0.1),
    ])
    torch.testing.assert_close(emb.weight, ref_emb.weight)
    torch.testing.assert_close(dense, ref_dense)
    # sparse: the decay is lazy, the batch's rows only (and it changes them)
    emb, dense = _problem(sparse=True)
    plain_emb, plain_dense = _problem(sparse=True)
    start = emb.weight.detach().clone()
    _train(emb, dense, [SparseDenseAdam([emb.weight, dense], lr=0.05, weight_decay=0.5)], steps=1)
    _train(plain_emb, plain_dense, [SparseDenseAdam([plain_emb.weight, plain_dense], lr=0.05)], steps=1)
    moved = (emb.weight != start).any(dim=1)
    assert 0 < int(moved.sum()) <= 16
    assert not torch.equal(emb.weight[moved], plain_emb.weight[moved])


def test_state_dict_round_trip_and_pickle():
    emb, dense = _problem(sparse=True)
    opt = SparseDenseAdam([emb.weight, dense], lr=0.05)
    _train(emb, dense, [opt], steps=3)
    copy_emb, copy_dense = pickle.loads(pickle.dumps((emb, dense)))
    copy = SparseDenseAdam([copy_emb.weight, copy_dense], lr=0.05)
    copy.load_state_dict(pickle.loads(pickle.dumps(opt.state_dict())))
    _train(emb, dense, [opt], steps=3)
    _train(copy_emb, copy_dense, [copy], steps=3)
    torch.testing.assert_close(emb.weight, copy_emb.weight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=-1.0), "learning rate"),
        (dict(betas=(1.0, 0.9)), "betas"),
        (dict(eps=-1.0), "eps"),
        (dict(weight_decay=-1.0), "weight_decay"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseDenseAdam([nn.Parameter(torch.zeros(2))], **kwargs)
