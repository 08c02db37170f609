"""The plain form of a fitted recommender: what artifacts and skops store.

:func:`to_plain` turns a fitted attribute into ndarrays, dicts, lists,
strings, numbers and None only -- id maps, sparse matrices, tuples and
:mod:`sklearn_recsys.nn` networks become tagged dicts -- and
:func:`from_plain` turns it back. The estimators' ``__getstate__`` gives
:mod:`skops.io` this form; :func:`sklearn_recsys.save` writes it as JSON and
safetensors arrays. Networks are rebuilt from a fixed list of classes (the
:mod:`sklearn_recsys.nn` modules, plus those the caller trusts), never from
pickled code.
"""

import numpy as np
import scipy.sparse as sp
import torch

from ._attributes import AttributeEncoder
from ._input import HashedIdIndex, IdIndex
from ._privacy import DifferentialPrivacy
from .nn import Scorer

# Version of the plain form (and of the artifact layout built on it).
PORTABLE_VERSION = 1


def _module_classes(trusted=()):
    from . import nn

    classes = {
        name: getattr(nn, name) for name in nn.__all__
        if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Scorer)
    }
    classes.update(
        (cls.__name__, cls) for cls in trusted
        if isinstance(cls, type) and issubclass(cls, nn.Scorer)
    )
    return classes


def to_plain(value):
    """A fitted attribute in plain form (ndarrays, dicts, lists, scalars).

    Id maps, sparse matrices and :mod:`sklearn_recsys.nn` modules become tagged
    dicts that :func:`from_plain` turns back into the same objects.
    """
    if isinstance(value, HashedIdIndex):  # the key is never part of the state
        return {"__hashed_ids__": hashes_to_array(value.ids)}
    if isinstance(value, IdIndex):
        return {"__ids__": np.asarray(value.ids)}
    if sp.issparse(value):
        csr = sp.csr_array(value)
        return {
            "__csr__": [int(n) for n in csr.shape], "data": csr.data,
            "indices": csr.indices, "indptr": csr.indptr,
        }
    if isinstance(value, Scorer):
        return {
            "__module__": type(value).__name__,
            "config": to_plain(value.get_config()),
            "state": {k: v.detach().cpu().numpy() for k, v in value.state_dict().items()},
        }
    if isinstance(value, DifferentialPrivacy):
        return {"__differential_privacy__": value._params()}
    if isinstance(value, AttributeEncoder):
        return {"__attribute_encoder__": to_plain(value.__getstate__())}
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [to_plain(v) for v in value]}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def hashes_to_array(hashes):
    """Hex digests as a uint8 array of shape (n, n_bytes) (half the size)."""
    hashes = list(hashes)
    if not hashes:
        return np.zeros((0, 16), dtype=np.uint8)
    raw = b"".join(bytes.fromhex(h) for h in hashes)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(hashes), -1).copy()


def array_to_hashes(array):
    """Inverse of :func:`hashes_to_array`."""
    out = np.empty(len(array), dtype=object)
    out[:] = [bytes(row).hex() for row in np.asarray(array, dtype=np.uint8)]
    return out


def from_plain(value, device="cpu", trusted=()):
    """The object of a plain value (inverse of :func:`to_plain`).

    Networks are rebuilt from the classes of :mod:`sklearn_recsys.nn` and
    the :class:`~sklearn_recsys.nn.Scorer` subclasses in ``trusted``.
    """
    if isinstance(value, list):
        return [from_plain(v, device, trusted) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ids__" in value:
        return IdIndex(value["__ids__"])
    if "__hashed_ids__" in value:
        return HashedIdIndex(array_to_hashes(value["__hashed_ids__"]), key=None)
    if "__csr__" in value:
        return sp.csr_array(
            (value["data"], value["indices"], value["indptr"]), shape=tuple(value["__csr__"])
        )
    if "__tuple__" in value:
        return tuple(from_plain(v, device, trusted) for v in value["__tuple__"])
    if "__module__" in value:
        return _module_from_plain(value, device, trusted)
    if "__differential_privacy__" in value:
        return DifferentialPrivacy(**value["__differential_privacy__"])
    if "__attribute_encoder__" in value:
        encoder = AttributeEncoder.__new__(AttributeEncoder)
        encoder.__setstate__(from_plain(value["__attribute_encoder__"]))
        return encoder
    return {k: from_plain(v, device, trusted) for k, v in value.items()}


def _check_sizes(cls, config, state):
    """Build the network on the meta device first: its sizes must be the file's.

    A configuration that does not match the stored weights (e.g. sizes made
    up to exhaust memory) is refused before anything is allocated.
    """
    try:
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            probe = cls(**config)
    except Exception:  # noqa: BLE001 - a network that cannot be built on meta
        return
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    if expected != stored:
        raise ValueError(
            f"The {cls.__name__} configuration of the model does not match its "
            "stored weights (the artifact is corrupt or was altered)."
        )


def _module_from_plain(value, device, trusted):
    classes = _module_classes(trusted)
    name = value["__module__"]
    if name not in classes:
        raise ValueError(
            f"Unknown network class {name!r} in the model state; known: "
            f"{sorted(classes)}. Pass your own classes with trusted=[...]."
        )
    config = {
        k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v
        for k, v in from_plain(value["config"]).items()
    }
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in value["state"].items()}
    _check_sizes(classes[name], config, state)
    # the weights come from the state dict: skip drawing an initialisation
    with torch.random.fork_rng(devices=[]):
        module = classes[name](**config)
    module.load_state_dict(state, strict=True)
    return module.to(device).eval()
