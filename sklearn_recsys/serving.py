"""A monitored HTTP recommendation service (FastAPI + uvicorn).

:func:`create_app` wraps a fitted recommender of this package (or the path of
an artifact written by :func:`sklearn_recsys.save`) in a FastAPI application;
:func:`serve` runs it with uvicorn, as does the command line::

    python -m sklearn_recsys serve model.safetensors --port 8000 --token SECRET

Endpoints (JSON in, JSON out; interactive OpenAPI documentation at ``/docs``):

* ``POST /recommend`` -- ``{"users": [...], "k": 10, "exclude_seen": true,
  "items": [...]}`` for users known to the model (unknown users get the
  model's fallback, as :meth:`recommend` does), or ``{"histories": [[item
  ids, oldest first], ...]}`` for new users folded in without refitting
  (``"values"``, one list per history, gives the ratings or weights of the
  pair models; a ``loss="mse"`` model needs them). ``"items"`` is an optional
  allow-list of candidate items. Answers ``{"items": [[...]], "scores":
  [[...]]}`` in the model's raw ids, best first; a user with fewer than ``k``
  eligible items gets a shorter list (the ``-inf`` fill of
  :meth:`recommend` is left out).
* ``POST /similar-items`` -- ``{"items": [...], "k": 10}``: nearest items by
  cosine similarity of the item embeddings, ``{"items": [[...]], "scores":
  [[...]]}``.
* ``POST /predict`` -- ``{"users": [...], "items": [...]}`` (pairs, same
  length): ``{"scores": [...]}``, one per pair. Models fitted on a user x
  item matrix predict for matrices of new users only, and answer 400 here.
* ``GET /health`` -- status, model class, numbers of users and items,
  artifact path, uptime, model generation and the counts of requests and
  model calls (unauthenticated).
* ``GET /metrics`` -- Prometheus text format: requests, errors and latency
  per endpoint, model calls, batch sizes, reloads.
* ``POST /admin/reload`` -- ``{"path": "..."}``: hot swap (below).

Every answer carries a ``Server-Timing: app;dur=<ms>`` header: the time the
service spent on the request until the answer started.

Errors: a body that does not match the schema is answered 422 with the
offending field (FastAPI's ``{"detail": [{"loc": [...], "msg": ...}]}``);
values the model refuses (an unknown item under ``handle_unknown="error"``,
an allow-list item the model does not know) are answered 400 with the
model's message. Neither is ever a 500.

Authentication: with a token (``token=`` or the ``SKLEARN_RECSYS_TOKEN``
environment variable) every endpoint but ``/health`` (and the OpenAPI pages
``/docs`` and ``/openapi.json``, which hold no data) requires the header
``Authorization: Bearer <token>``; requests without it are answered 401 with
``WWW-Authenticate: Bearer``. Tokens are compared in constant time. Without a
token the service is open: bind it to localhost (the default).

Micro-batching: the model runs in one worker thread, so the event loop stays
free to accept requests while it computes. Concurrent ``/recommend``
requests with the same ``k``, ``exclude_seen``, ``items`` and kind (known
users or histories) are merged into one :meth:`recommend` call of up to
``max_batch_size`` users: a batch keeps accepting requests while the worker
is busy with the previous call, and waits up to ``max_wait_ms`` (default 0)
for company when the worker is idle. The results are split back per
request. When a merged call fails on a bad value, its requests are rerun one
by one so that only the faulty request gets the error.

Hot swap: ``POST /admin/reload`` with ``{"path": "new.safetensors"}`` (the
token is required when one is set) loads the artifact in a background
thread while the service keeps answering with the current model, then swaps
the model in one step. Each request is served entirely by the model that was
current when it arrived: requests in flight (and batches they are part of)
finish on the old model, no request is dropped or failed by a swap, and
later requests see the new one. ``/health`` reports the new model's class,
artifact and ``generation`` (incremented by every swap). A reload that fails
(missing file, not an artifact) answers 400 and leaves the current model in
place. Reloads run one at a time.

Examples
--------
Serve an artifact and ask it for the top 5 items of two known users::

    $ export SKLEARN_RECSYS_TOKEN=s3cret
    $ python -m sklearn_recsys serve model.safetensors --port 8000
    $ curl -s localhost:8000/recommend -H "Authorization: Bearer s3cret" \\
        -H "Content-Type: application/json" -d '{"users": [1, 2], "k": 5}'

In Python, :func:`create_app` gives the ASGI application (see its example).
"""

import asyncio
import contextlib
import gc
import logging
import math
import os
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np

try:
    from fastapi import FastAPI, HTTPException, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.security import HTTPBearer
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Gauge,
        Histogram,
        generate_latest,
    )
    from prometheus_client import Counter as PromCounter
    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        StrictBool,
        StrictInt,
        StrictStr,
        model_validator,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "sklearn_recsys.serving needs FastAPI, uvicorn and prometheus_client "
        f"({exc}). Install them with: "
        'pip install -c constraints.txt "sklearn_recsys[serve]"'
    ) from exc

__all__ = ["TOKEN_ENV", "create_app", "serve"]

logger = logging.getLogger(__name__)

#: Environment variable read for the bearer token when none is given.
TOKEN_ENV = "SKLEARN_RECSYS_TOKEN"

# Paths answered without a token: health checks and the API description.
_PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
_ENDPOINTS = ("/recommend", "/similar-items", "/predict", "/health", "/metrics", "/admin/reload")
# Metric labels take fixed values only: a client cannot create new series.
_METHODS = ("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH")
# Most ids (or pairs, or histories) one request may carry.
_MAX_IDS = 100_000
# Errors a model raises for values it refuses (answered 400, never 500).
_INPUT_ERRORS = (ValueError, TypeError, OverflowError)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


# -- request and response bodies -------------------------------------------------------

Id = StrictInt | StrictStr
IdList = Annotated[list[Id], Field(min_length=1, max_length=_MAX_IDS)]
K = Annotated[
    StrictInt, Field(gt=0, description="items per row (clipped to the candidates)")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Body):
    """Body of ``POST /recommend``: ``users`` or ``histories``, not both."""

    users: IdList | None = Field(
        default=None, description="raw ids of users known to the model"
    )
    histories: Annotated[list[list[Id]], Field(min_length=1, max_length=_MAX_IDS)] | None = Field(
        default=None, description="new users: one list of item ids per user, oldest first"
    )
    values: list[list[Annotated[float, Field(allow_inf_nan=False)]]] | None = Field(
        default=None,
        description="ratings or weights of the histories' items (pair models; "
        "default 1.0)",
    )
    k: K = 10
    exclude_seen: StrictBool = True
    items: IdList | None = Field(default=None, description="allow-list of candidate items")

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.users is None) == (self.histories is None):
            raise ValueError(
                "give exactly one of 'users' (known users) or 'histories' (new users)"
            )
        if self.values is not None:
            if self.histories is None:
                raise ValueError("'values' goes with 'histories'")
            if [len(v) for v in self.values] != [len(h) for h in self.histories]:
                raise ValueError(
                    "'values' must have one list per history, of the history's length"
                )
        return self


class SimilarItemsRequest(_Body):
    """Body of ``POST /similar-items``."""

    items: IdList
    k: K = 10


class PredictRequest(_Body):
    """Body of ``POST /predict``: (user, item) pairs."""

    users: IdList
    items: IdList

    @model_validator(mode="after")
    def _same_length(self):
        if len(self.users) != len(self.items):
            raise ValueError(
                f"'users' and 'items' must have the same length (pairs), got "
                f"{len(self.users)} and {len(self.items)}"
            )
        return self


class ReloadRequest(_Body):
    """Body of ``POST /admin/reload``."""

    path: Annotated[StrictStr, Field(min_length=1)]


class RankedResponse(BaseModel):
    """Rows of raw item ids, best first, and their scores."""

    items: list[list[int | float | str]]
    scores: list[list[float | None]]


class PredictResponse(BaseModel):
    scores: list[float | None]


# -- the served model ------------------------------------------------------------------


@dataclass(frozen=True)
class _Served:
    """A model with what ``/health`` says about it; replaced whole by a swap."""

    model: object
    artifact: str | None
    generation: int
    loaded_at: float
    n_users: int
    n_items: int


def _load_artifact(path, device):
    try:
        from . import load
    except ImportError as exc:  # pragma: no cover - artifacts not in this version
        raise RuntimeError(
            "This version of sklearn_recsys cannot read artifacts "
            "(sklearn_recsys.load is missing)."
        ) from exc
    return load(os.fspath(path), device=device)


def _served(model, artifact, generation):
    from sklearn.utils.validation import check_is_fitted

    from ._base import BaseRecommender

    if not isinstance(model, BaseRecommender):
        raise TypeError(
            "create_app serves a fitted recommender of sklearn_recsys or the path "
            f"of an artifact saved with sklearn_recsys.save, got {type(model).__name__}."
        )
    check_is_fitted(model)
    return _Served(
        model=model, artifact=None if artifact is None else os.fspath(artifact),
        generation=generation, loaded_at=time.time(),
        n_users=len(model.user_ids_), n_items=len(model.item_ids_),
    )


# -- model calls (run in the worker thread) --------------------------------------------


def _history_input(model, histories, values):
    """What ``model.recommend`` reads for new users given as item-id lists.

    Sequence models take the lists as they are. The other models take a user
    x item matrix (columns = the fitted items) whose stored values are the
    ``values`` (1.0 by default); unknown items follow ``handle_unknown``.
    """
    if model._sequential:
        return [list(h) for h in histories]
    import scipy.sparse as sp

    from ._sequence_data import history_lists

    record, raw = history_lists(histories, model._item_index)
    unknown = record.items < 0
    model._unknown("item", raw, unknown)
    data = (
        np.ones(len(raw), dtype=np.float32) if values is None
        else np.fromiter((v for row in values for v in row), dtype=np.float32, count=len(raw))
    )
    keep = ~unknown
    return sp.csr_array(
        (data[keep], (record.users[keep], record.items[keep])),
        shape=(len(histories), len(model._item_index)),
    )


def _recommend(model, kind, rows, values, k, exclude_seen, items):
    users = rows if kind == "users" else _history_input(model, rows, values)
    return model.recommend(users, k, exclude_seen=exclude_seen,
                           items=None if items is None else list(items))


def _predict(model, users, items):
    import pandas as pd

    table = pd.DataFrame({model.user_col: users, model.item_col: items})
    return np.asarray(model.predict(table), dtype=np.float64)


# -- JSON ------------------------------------------------------------------------------


def _id_rows(ids):
    rows = np.asarray(ids).tolist()
    if np.asarray(ids).dtype != object:
        return rows
    return [[v.item() if isinstance(v, np.generic) else v for v in row] for row in rows]


def _float(value):
    return value if math.isfinite(value) else None


def _ranked_json(ids, scores):
    """Rows of ids and scores, without the ``-inf`` fill of excluded items."""
    out_ids, out_scores = [], []
    for id_row, score_row in zip(_id_rows(ids), np.asarray(scores).tolist(), strict=True):
        keep = [j for j, s in enumerate(score_row) if s != -math.inf]
        out_ids.append([id_row[j] for j in keep])
        out_scores.append([_float(score_row[j]) for j in keep])
    return {"items": out_ids, "scores": out_scores}


def _validation_detail(errors):
    """FastAPI's 422 detail, JSON-safe and short.

    The offending input is echoed only when it is a short scalar: a NaN
    (which JSON cannot carry) or a whole large body is not sent back.
    """
    out = []
    for error in errors:
        item = {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")),
                "type": str(error.get("type", ""))}
        if "input" in error and _short_scalar(error["input"]):
            item["input"] = error["input"]
        out.append(item)
    return out


def _short_scalar(value):
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 200


async def _validation_error(request, exc):
    return JSONResponse({"detail": _validation_detail(exc.errors())}, status_code=422)


def _http_error(exc):
    if isinstance(exc, NotImplementedError):  # a model without fold-in
        return HTTPException(422, detail=[{
            "loc": ["body", "histories"], "type": "value_error",
            "msg": "This model cannot recommend for new users' histories; "
                   "pass 'users' (ids known to the model).",
        }])
    return HTTPException(400, detail=str(exc))


# -- metrics ---------------------------------------------------------------------------


class _Metrics:
    """The Prometheus metrics of one app, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        reg = dict(registry=self.registry)
        self.requests = PromCounter(
            "sklearn_recsys_requests", "HTTP requests answered, by endpoint and status.",
            ["endpoint", "method", "status"], **reg)
        self.errors = PromCounter(
            "sklearn_recsys_request_errors",
            "HTTP requests answered with a 4xx or 5xx status, by endpoint.",
            ["endpoint", "status"], **reg)
        self.latency = Histogram(
            "sklearn_recsys_request_latency_seconds",
            "Time from request to response, by endpoint.", ["endpoint"],
            buckets=_LATENCY_BUCKETS, **reg)
        self.in_progress = Gauge(
            "sklearn_recsys_requests_in_progress", "HTTP requests being answered.", **reg)
        self.model_calls = PromCounter(
            "sklearn_recsys_model_calls",
            "Calls of the model's methods (one per batch for recommend).", ["method"], **reg)
        self.batch_requests = Histogram(
            "sklearn_recsys_batch_requests",
            "HTTP requests merged into one recommend call.", buckets=_BATCH_BUCKETS, **reg)
        self.batch_users = Histogram(
            "sklearn_recsys_batch_users",
            "Users (or histories) in one recommend call.", buckets=_BATCH_BUCKETS, **reg)
        self.reloads = PromCounter(
            "sklearn_recsys_model_reloads", "Hot swaps of the model, by outcome.",
            ["outcome"], **reg)
        self.generation = Gauge(
            "sklearn_recsys_model_generation", "Generation of the served model "
            "(0 at start, +1 per swap).", **reg)


class _Middleware:
    """Pure ASGI middleware: bearer-token check, then metrics of every request."""

    def __init__(self, app, service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        service, metrics = self.service, self.service.metrics
        path = scope["path"]
        endpoint = path if path in _ENDPOINTS else "other"
        status = 500
        start = time.perf_counter()

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                timing = f"app;dur={(time.perf_counter() - start) * 1e3:.3f}".encode()
                message = {**message,
                           "headers": [*message.get("headers", ()), (b"server-timing", timing)]}
            await send(message)

        metrics.in_progress.inc()
        try:
            protected = service.token is not None and path not in _PUBLIC_PATHS
            if protected and not service.authorized(scope):
                response = JSONResponse(
                    {"detail": "Missing or invalid bearer token."}, status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            metrics.in_progress.dec()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            metrics.requests.labels(endpoint, method, str(status)).inc()
            if status >= 400:
                metrics.errors.labels(endpoint, str(status)).inc()


# -- micro-batching --------------------------------------------------------------------


@dataclass(eq=False)
class _Batch:
    key: tuple
    served: _Served
    n_rows: int = 0
    parts: list = field(default_factory=list)  # (rows, values, future)
    full: asyncio.Event = field(default_factory=asyncio.Event)


class _Runtime:
    """Per-event-loop machinery: the model worker thread, its slot, the open batches."""

    def __init__(self, service):
        self.service = service
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sklearn-recsys-model"
        )
        self.slot = asyncio.Lock()  # the worker: one model call at a time
        self.open = {}  # batch key -> _Batch still accepting requests
        self.tasks = set()

    def close(self):
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def call(self, method, fn, *args):
        """Run ``fn(*args)`` on the model worker and count the call."""
        async with self.slot:
            try:
                return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
            finally:
                self.service.count_call(method)

    async def recommend(self, served, kind, rows, values, k, exclude_seen, items):
        loop = asyncio.get_running_loop()
        key = (id(served), kind, k, exclude_seen, None if items is None else tuple(items))
        limit = self.service.max_batch_size
        batch = self.open.get(key)
        if batch is not None and batch.n_rows + len(rows) > limit:
            self._close(batch)
            batch = None
        if batch is None:
            batch = _Batch(key, served)
            self.open[key] = batch
            task = loop.create_task(self._run(batch, kind, k, exclude_seen, items))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        future = loop.create_future()
        batch.parts.append((rows, values, future))
        batch.n_rows += len(rows)
        if batch.n_rows >= limit:
            self._close(batch)
        return await future

    def _close(self, batch):
        if self.open.get(batch.key) is batch:
            del self.open[batch.key]
        batch.full.set()

    async def _run(self, batch, kind, k, exclude_seen, items):
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.service.max_wait_ms / 1000.0, batch.full.set)
        try:
            await batch.full.wait()
            async with self.slot:  # still open (and growing) while the worker is busy
                self._close(batch)
                await self._execute(batch, kind, k, exclude_seen, items)
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets it
            for _, _, future in batch.parts:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            timer.cancel()

    async def _execute(self, batch, kind, k, exclude_seen, items):
        loop = asyncio.get_running_loop()
        model = batch.served.model
        parts = batch.parts
        metrics = self.service.metrics

        def run(rows, values):
            return loop.run_in_executor(
                self.executor, _recommend, model, kind, rows, values, k, exclude_seen, items
            )

        rows = [r for part in parts for r in part[0]]
        values = None
        if any(part[1] is not None for part in parts):
            values = [
                v for r, vs, _ in parts
                for v in (vs if vs is not None else [[1.0] * len(h) for h in r])
            ]
        metrics.batch_requests.observe(len(parts))
        metrics.batch_users.observe(len(rows))
        try:
            ids, scores = await run(rows, values)
        except _INPUT_ERRORS + (NotImplementedError,) as exc:
            self.service.count_call("recommend")
            if len(parts) == 1:
                if not parts[0][2].done():
                    parts[0][2].set_exception(exc)
                return
            # one faulty request must not fail the others: rerun them one by one
            for part_rows, part_values, future in parts:
                try:
                    result = await run(part_rows, part_values)
                except _INPUT_ERRORS + (NotImplementedError,) as part_exc:
                    result = part_exc
                self.service.count_call("recommend")
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            return
        self.service.count_call("recommend")
        start = 0
        for part_rows, _, future in parts:
            stop = start + len(part_rows)
            if not future.done():
                future.set_result((ids[start:stop], scores[start:stop]))
            start = stop


# -- the service -----------------------------------------------------------------------


class _Service:
    """State of one app: the served model, the token, counters and runtime."""

    def __init__(self, served, *, token, device, max_batch_size, max_wait_ms):
        self.served = served
        self.token = token
        self.device = device
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.started = time.time()
        self.metrics = _Metrics()
        self.metrics.generation.set(served.generation)
        self.calls = Counter()
        self.recommend_requests = 0
        self.reloading = False
        self._runtime = None
        self._reload_lock = None

    # token
    def authorized(self, scope):
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                return scheme.lower() == b"bearer" and secrets.compare_digest(
                    credentials.strip(), self.token.encode("utf-8")
                )
        return False

    # runtime, created in the running event loop
    def runtime(self):
        if self._runtime is None:
            self._runtime = _Runtime(self)
            self._reload_lock = asyncio.Lock()
        return self._runtime

    def stop(self):
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def count_call(self, method):
        self.calls[method] += 1
        self.metrics.model_calls.labels(method).inc()

    async def reload(self, path):
        self.runtime()
        async with self._reload_lock:
            self.reloading = True
            try:
                model = await asyncio.to_thread(_load_artifact, path, self.device)
                served = _served(model, path, self.served.generation + 1)
            except Exception as exc:  # noqa: BLE001 - the current model stays
                self.metrics.reloads.labels("failure").inc()
                logger.warning("reload of %s failed: %s", path, exc)
                raise HTTPException(400, detail=f"Could not load {path!r}: {exc}") from exc
            finally:
                self.reloading = False
            self.served = served  # the swap: one assignment on the event loop
            self.metrics.reloads.labels("success").inc()
            self.metrics.generation.set(served.generation)
            logger.info("now serving %s from %s (generation %d)",
                        type(model).__name__, path, served.generation)
            return served

    def health(self):
        served = self.served
        return {
            "status": "ok",
            "model": type(served.model).__name__,
            "n_users": served.n_users,
            "n_items": served.n_items,
            "artifact": served.artifact,
            "generation": served.generation,
            "loaded_at": served.loaded_at,
            "reloading": self.reloading,
            "uptime_s": time.time() - self.started,
            "device": getattr(served.model, "device", None),
            "auth": self.token is not None,
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait_ms,
            "recommend_requests": self.recommend_requests,
            "model_calls": dict(self.calls),
        }


def _check_options(max_batch_size, max_wait_ms):
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, (int, np.integer)) \
            or max_batch_size < 1:
        raise ValueError(f"max_batch_size must be a positive integer, got {max_batch_size!r}.")
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float, np.number)) \
            or not 0 <= max_wait_ms < math.inf:
        raise ValueError(f"max_wait_ms must be a non-negative number, got {max_wait_ms!r}.")


def create_app(model, *, token=None, device="cpu", max_batch_size=256, max_wait_ms=0.0):
    """A FastAPI application serving a recommender over HTTP.

    See the module documentation (:mod:`sklearn_recsys.serving`) for the
    endpoints, error statuses, authentication, micro-batching and hot swap.

    Parameters
    ----------
    model : estimator or path-like
        A fitted recommender of this package, or the path of an artifact
        written by :func:`sklearn_recsys.save` (read with
        :func:`sklearn_recsys.load` onto ``device``).
    token : str, default=None
        Bearer token required by every endpoint but ``/health``. When None,
        the ``SKLEARN_RECSYS_TOKEN`` environment variable is read; unset or
        empty means no authentication.
    device : str, default="cpu"
        Torch device artifacts are loaded onto (at start and by
        ``/admin/reload``). A fitted estimator is served where it is.
    max_batch_size : int, default=256
        Most users (or histories) merged into one ``recommend`` call.
    max_wait_ms : float, default=0.0
        Longest time a ``/recommend`` request waits for others to share its
        model call. Batches form anyway while the model is busy with the
        previous call; with 0 an idle model starts at once.
        (``benchmarks/bench_serve.py`` on 2 CPUs: a 2 ms wait added 2 ms of
        latency at one client and changed the throughput at 8 and 32 clients
        by less than 10%.)

    Returns
    -------
    app : fastapi.FastAPI
        Run it with :func:`serve`, ``uvicorn.run(app)``, or any ASGI server.
        ``app.state.service`` holds the serving state.

    Examples
    --------
    >>> import asyncio
    >>> import httpx
    >>> import pandas as pd
    >>> from sklearn_recsys import Popularity
    >>> from sklearn_recsys.serving import create_app
    >>> X = pd.DataFrame({"user": ["ann", "ann", "bob"], "item": ["a", "b", "a"]})
    >>> app = create_app(Popularity().fit(X), token="s3cret")
    >>> async def ask(path, body=None):
    ...     transport = httpx.ASGITransport(app=app)
    ...     headers = {"Authorization": "Bearer s3cret"}
    ...     async with httpx.AsyncClient(transport=transport, base_url="http://app",
    ...                                  headers=headers) as client:
    ...         res = await (client.get(path) if body is None else client.post(path, json=body))
    ...         return res.status_code, res.json()
    >>> asyncio.run(ask("/recommend", {"users": ["bob"], "k": 1}))
    (200, {'items': [['b']], 'scores': [[1.0]]})
    >>> asyncio.run(ask("/recommend", {"users": ["bob"], "k": 0}))[0]
    422
    >>> asyncio.run(ask("/health"))[1]["model"]
    'Popularity'
    """
    _check_options(max_batch_size, max_wait_ms)
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token must be a string, got {type(token).__name__}.")
    token = token or None
    if isinstance(model, (str, os.PathLike)):
        served = _served(_load_artifact(model, device), model, 0)
    else:
        served = _served(model, None, 0)
    service = _Service(served, token=token, device=device,
                       max_batch_size=int(max_batch_size), max_wait_ms=float(max_wait_ms))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.runtime()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="sklearn_recsys",
        summary=f"Recommendations from a {type(served.model).__name__}.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(_Middleware, service=service)
    # documents the bearer scheme in /docs (the middleware enforces it)
    bearer = [Security(HTTPBearer(auto_error=False))]

    @app.post("/recommend", response_model=RankedResponse, dependencies=bearer)
    async def recommend(body: RecommendRequest):
        """Top-``k`` items for known users or for new users' histories."""
        served = service.served
        if body.users is not None:
            kind, rows = "users", body.users
        else:
            kind, rows = "histories", body.histories
            _check_histories(served.model, body.values)
        service.recommend_requests += 1
        try:
            ids, scores = await service.runtime().recommend(
                served, kind, rows, body.values, body.k, body.exclude_seen, body.items
            )
        except _INPUT_ERRORS + (NotImplementedError,) as exc:
            raise _http_error(exc) from exc
        return JSONResponse(_ranked_json(ids, scores))

    @app.post("/similar-items", response_model=RankedResponse, dependencies=bearer)
    async def similar_items(body: SimilarItemsRequest):
        """Most similar items (cosine similarity of the item embeddings)."""
        model = service.served.model
        try:
            ids, sims = await service.runtime().call(
                "similar_items", model.similar_items, body.items, body.k
            )
        except _INPUT_ERRORS as exc:
            raise _http_error(exc) from exc
        return JSONResponse(_ranked_json(ids, sims))

    @app.post("/predict", response_model=PredictResponse, dependencies=bearer)
    async def predict(body: PredictRequest):
        """Scores of (user, item) pairs."""
        model = service.served.model
        try:
            scores = await service.runtime().call(
                "predict", _predict, model, body.users, body.items
            )
        except _INPUT_ERRORS as exc:
            raise _http_error(exc) from exc
        return JSONResponse({"scores": [_float(s) for s in scores.tolist()]})

    @app.get("/health")
    async def health():
        """Status of the service and of the served model (no token needed)."""
        return service.health()

    @app.get("/metrics", dependencies=bearer, response_class=Response)
    async def metrics():
        """Prometheus metrics in the text exposition format."""
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", dependencies=bearer)
    async def reload(body: ReloadRequest):
        """Load an artifact and swap it in; requests in flight finish on the old model."""
        start = time.perf_counter()
        new = await service.reload(body.path)
        return {
            "status": "reloaded", "model": type(new.model).__name__,
            "artifact": new.artifact, "generation": new.generation,
            "load_seconds": time.perf_counter() - start,
        }

    return app


def _check_histories(model, values):
    """422 for histories a model cannot read as given."""
    def invalid(msg):
        detail = [{"loc": ["body", "values"], "type": "value_error", "msg": msg}]
        return HTTPException(422, detail=detail)

    if model._sequential and values is not None:
        raise invalid(
            f"{type(model).__name__} reads the order of each history, not values; "
            "leave 'values' out."
        )
    if values is None and getattr(model, "loss", None) == "mse" and not model._sequential:
        raise invalid(
            "This model was trained on ratings (loss='mse'): folding new users in "
            "needs their ratings, one list per history in 'values'."
        )


def serve(model, *, host="127.0.0.1", port=8000, token=None, device="cpu",
          max_batch_size=256, max_wait_ms=0.0, log_level="info"):
    """Serve a recommender over HTTP with uvicorn until interrupted.

    Parameters
    ----------
    model : estimator or path-like
        Passed to :func:`create_app`.
    host : str, default="127.0.0.1"
        Interface to bind. Binding another one without a token logs a
        warning: the service would be open to the network.
    port : int, default=8000
        TCP port (0: any free port).
    token, device, max_batch_size, max_wait_ms
        Passed to :func:`create_app`.
    log_level : str, default="info"
        uvicorn's log level.

    Notes
    -----
    Before serving, the objects alive in the process are moved out of the
    cyclic garbage collector's reach (``gc.freeze()``): its full passes
    would otherwise stall every request for about 200 ms now and then
    (``benchmarks/bench_serve.py``: the p99 latency at 32 clients). Do the
    same when running :func:`create_app`'s application another way.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "Serving needs uvicorn: pip install -c constraints.txt "
            '"sklearn_recsys[serve]"'
        ) from exc
    app = create_app(model, token=token, device=device,
                     max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
    # A full pass of the cyclic garbage collector scans every object of the
    # process (torch, pandas, scikit-learn...: ~200 ms on 2 CPUs, during
    # which no request is answered); what is alive now is kept out of its
    # reach. Objects of models swapped in later are collected as usual.
    gc.collect()
    gc.freeze()
    if app.state.service.token is None and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("Serving on %s without a token: anyone who reaches it can use "
                       "it, reload included. Set --token or %s.", host, TOKEN_ENV)
    uvicorn.run(app, host=host, port=port, log_level=log_level)

