"""The HTTP service (``sklearn_recsys.serving``), through a real uvicorn server.

Every test talks to a server listening on an ephemeral localhost port with a
real ``httpx`` client: endpoints against the models' own answers, every 4xx,
bearer tokens, Prometheus metrics, micro-batching of concurrent requests,
hot swap while requests are in flight, and the ``serve`` command line.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import sklearn_recsys  # noqa: E402
from sklearn_recsys import AttentionRecommender, MatrixFactorization, Popularity  # noqa: E402
from sklearn_recsys.__main__ import main  # noqa: E402
from sklearn_recsys.datasets import make_interactions  # noqa: E402
from sklearn_recsys.serving import TOKEN_ENV, create_app  # noqa: E402

TOKEN = "t0ken-for-tests"


class Server:
    """A uvicorn server in a background thread on a free localhost port."""

    def __init__(self, app):
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def client(self, token=None):
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def interactions():
    data = make_interactions(80, 40, density=0.15, sequential=True, random_state=0)
    return data.interactions


@pytest.fixture(scope="module")
def mf(interactions):
    return MatrixFactorization(loss="softmax", max_iter=2, random_state=0).fit(interactions)


@pytest.fixture(scope="module")
def attention(interactions):
    return AttentionRecommender(max_iter=2, random_state=0).fit(interactions)


@pytest.fixture(scope="module")
def strict_mf(interactions):
    return MatrixFactorization(
        loss="softmax", max_iter=1, handle_unknown="error", random_state=0
    ).fit(interactions)


@pytest.fixture(scope="module")
def mf_server(mf):
    with Server(create_app(mf, token="", max_wait_ms=5)) as server:
        yield server


@pytest.fixture(scope="module")
def attention_server(attention):
    with Server(create_app(attention, token="")) as server:
        yield server


@pytest.fixture(scope="module")
def strict_server(strict_mf):
    with Server(create_app(strict_mf, token="", max_wait_ms=50)) as server:
        yield server


def metric(text, name):
    """The value of the sample ``name`` (with its labels) in a metrics page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def assert_ranked(body, ids, scores):
    assert body["items"] == np.asarray(ids).tolist()
    np.testing.assert_allclose(np.array(body["scores"]), scores, rtol=1e-5, atol=1e-6)


# -- happy paths -----------------------------------------------------------------------


def test_recommend_known_users(mf, mf_server):
    users = [0, 5, 17]
    with mf_server.client() as client:
        res = client.post("/recommend", json={"users": users, "k": 5})
        assert res.status_code == 200
        assert_ranked(res.json(), *mf.recommend(users, k=5))
        # allow-list, seen items kept, an unknown user (popularity fallback)
        body = {"users": [3, 9999], "k": 3, "exclude_seen": False, "items": [1, 2, 3, 4]}
        res = client.post("/recommend", json=body)
        assert res.status_code == 200
        assert_ranked(res.json(), *mf.recommend([3, 9999], k=3, exclude_seen=False,
                                                items=[1, 2, 3, 4]))


def test_recommend_histories_pair_model(mf, mf_server):
    histories = [[1, 2, 3], [7], []]
    n_items = len(mf.item_ids_)
    rows = np.repeat(np.arange(3), [len(h) for h in histories])
    cols = mf._item_index.transform(np.array([i for h in histories for i in h]))
    H = sp.csr_array((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(3, n_items))
    with mf_server.client() as client:
        res = client.post("/recommend", json={"histories": histories, "k": 4})
    assert res.status_code == 200
    assert_ranked(res.json(), *mf.recommend(H, k=4))
    seen = set(res.json()["items"][0])
    assert not seen & {1, 2, 3}  # the history's items are excluded


def test_recommend_histories_sequence_model(attention, attention_server):
    histories = [[4, 5, 6, 7], [12, 3], []]
    with attention_server.client() as client:
        res = client.post("/recommend", json={"histories": histories, "k": 5})
        assert res.status_code == 200
        assert_ranked(res.json(), *attention.recommend(histories, k=5))
        res = client.post("/recommend", json={"users": [1, 2], "k": 5})
        assert res.status_code == 200
        assert_ranked(res.json(), *attention.recommend([1, 2], k=5))


def test_short_rows_leave_out_excluded_items(mf, mf_server):
    # two of the three allowed items were seen by user 0: one is eligible
    seen_idx = mf._seen[[0]].indices
    seen = mf.item_ids_[seen_idx].tolist()
    unseen = [i for i in mf.item_ids_.tolist() if i not in seen]
    allowed = seen[:2] + unseen[:1]
    with mf_server.client() as client:
        res = client.post("/recommend", json={"users": [0], "k": 3, "items": allowed})
    assert res.status_code == 200
    assert res.json()["items"] == [[unseen[0]]]
    assert len(res.json()["scores"][0]) == 1


def test_similar_items(mf, attention, mf_server, attention_server):
    for model, server in [(mf, mf_server), (attention, attention_server)]:
        with server.client() as client:
            res = client.post("/similar-items", json={"items": [0, 3], "k": 4})
        assert res.status_code == 200
        assert_ranked(res.json(), *model.similar_items([0, 3], k=4))


def test_predict(mf, attention, mf_server, attention_server):
    users, items = [0, 1, 2, 9999], [5, 6, 7, 5]
    table = pd.DataFrame({"user": users, "item": items})
    for model, server in [(mf, mf_server), (attention, attention_server)]:
        with server.client() as client:
            res = client.post("/predict", json={"users": users, "items": items})
        assert res.status_code == 200
        np.testing.assert_allclose(res.json()["scores"], model.predict(table), rtol=1e-5)


def test_health(mf, mf_server):
    with mf_server.client() as client:
        res = client.get("/health")
    body = res.json()
    assert float(res.headers["server-timing"].removeprefix("app;dur=")) >= 0
    assert body["status"] == "ok"
    assert body["model"] == "MatrixFactorization"
    assert body["n_users"] == len(mf.user_ids_) and body["n_items"] == len(mf.item_ids_)
    assert body["artifact"] is None and body["generation"] == 0
    assert body["uptime_s"] >= 0 and body["auth"] is False


def test_openapi_docs(mf_server):
    with mf_server.client() as client:
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/similar-items", "/predict", "/health", "/metrics",
            "/admin/reload"} <= set(paths)


# -- errors ----------------------------------------------------------------------------

INVALID = [
    # (endpoint, body, field named in the answer)
    ("/recommend", {"k": 5}, "users"),  # neither users nor histories
    ("/recommend", {"users": [1], "histories": [[1]]}, "histories"),
    ("/recommend", {"users": "abc"}, "users"),
    ("/recommend", {"users": [1.5]}, "users"),
    ("/recommend", {"users": []}, "users"),
    ("/recommend", {"users": [1], "k": 0}, "k"),
    ("/recommend", {"users": [1], "k": -3}, "k"),
    ("/recommend", {"users": [1], "k": "ten"}, "k"),
    ("/recommend", {"users": [1], "exclude_seen": "yes"}, "exclude_seen"),
    ("/recommend", {"users": [1], "item": [1]}, "item"),  # typo: extra field
    ("/recommend", {"users": [1], "values": [[1.0]]}, "values"),
    ("/recommend", {"histories": [[1, 2]], "values": [[1.0]]}, "values"),
    ("/recommend", {"histories": [1, 2]}, "histories"),
    ("/recommend", {"histories": [[1]], "values": [["high"]]}, "values"),
    ("/similar-items", {"k": 3}, "items"),
    ("/similar-items", {"items": [1], "k": 0}, "k"),
    ("/predict", {"users": [1, 2]}, "items"),
    ("/predict", {"users": [1, 2], "items": [1]}, "same length"),
    ("/predict", {"users": [None], "items": [1]}, "users"),
    ("/admin/reload", {}, "path"),
]


@pytest.mark.parametrize("endpoint, body, name", INVALID)
def test_invalid_bodies_are_422_naming_the_field(mf_server, endpoint, body, name):
    with mf_server.client() as client:
        res = client.post(endpoint, json=body)
    assert res.status_code == 422, res.text
    assert name in res.text


def test_bad_json_is_422(mf_server):
    with mf_server.client() as client:
        res = client.post("/recommend", content=b'{"users": [1,',
                          headers={"Content-Type": "application/json"})
        assert res.status_code == 422 and "json" in res.text.lower()
        res = client.post("/recommend", content=b"users=1")
        assert res.status_code == 422


def test_history_values_rules(attention_server, interactions):
    with attention_server.client() as client:
        res = client.post("/recommend", json={"histories": [[1, 2]], "values": [[1.0, 1.0]]})
    assert res.status_code == 422 and "values" in res.text
    ratings = MatrixFactorization(max_iter=1, random_state=0).fit(
        interactions, np.arange(len(interactions)) % 5 + 1.0
    )
    with Server(create_app(ratings, token="")) as server, server.client() as client:
        res = client.post("/recommend", json={"histories": [[1, 2]]})
        assert res.status_code == 422 and "values" in res.text and "mse" in res.text
        res = client.post("/recommend", content=b'{"histories": [[1, 2]], "values": [[NaN, 1]]}',
                          headers={"Content-Type": "application/json"})
        assert res.status_code == 422 and "values" in res.text
        res = client.post("/recommend", json={"histories": [[1, 2]], "values": [[5.0, 1.0]]})
        assert res.status_code == 200
        H = sp.csr_array(
            (np.array([5.0, 1.0], dtype=np.float32),
             ([0, 0], ratings._item_index.transform(np.array([1, 2])))),
            shape=(1, len(ratings.item_ids_)),
        )
        assert res.json()["items"] == ratings.recommend(H, k=10)[0].tolist()


class NoFoldIn(Popularity):
    """A recommender that cannot read new users' histories."""

    def _fold_in(self, histories):
        raise NotImplementedError


def test_histories_for_a_model_without_fold_in_are_422(interactions):
    with Server(create_app(NoFoldIn().fit(interactions), token="")) as server:
        with server.client() as client:
            res = client.post("/recommend", json={"histories": [[1, 2]]})
            assert res.status_code == 422
            assert res.json()["detail"][0]["loc"] == ["body", "histories"]
            assert client.post("/recommend", json={"users": [1]}).status_code == 200


def test_values_refused_by_the_model_are_400(strict_server):
    with strict_server.client() as client:
        res = client.post("/recommend", json={"histories": [[1, 424242]]})
        assert res.status_code == 400 and "424242" in res.json()["detail"]
        assert "not seen during fit" in res.json()["detail"]
        res = client.post("/recommend", json={"users": [1], "items": [1, 777]})
        assert res.status_code == 400 and "777" in res.json()["detail"]
        res = client.post("/recommend", json={"users": [123456]})
        assert res.status_code == 400 and "123456" in res.json()["detail"]
        res = client.post("/similar-items", json={"items": [555]})
        assert res.status_code == 400 and "555" in res.json()["detail"]
        res = client.post("/predict", json={"users": [1], "items": [888]})
        assert res.status_code == 400 and "888" in res.json()["detail"]
        assert client.get("/health").json()["status"] == "ok"


def test_one_bad_request_does_not_fail_its_batch(strict_mf, strict_server):
    # max_wait_ms=50: the concurrent requests share a batch, one of them faulty
    bodies = [{"users": [u], "k": 3} for u in range(7)] + [{"users": [99999], "k": 3}]

    def post(body):
        with strict_server.client() as client:
            return client.post("/recommend", json=body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(post, bodies))
    assert [a.status_code for a in answers] == [200] * 7 + [400]
    for u, answer in enumerate(answers[:7]):
        assert answer.json()["items"] == strict_mf.recommend([u], k=3)[0].tolist()


# -- auth ------------------------------------------------------------------------------


def test_bearer_token(mf, monkeypatch):
    def check(app):
        with Server(app) as server:
            with server.client() as anonymous:
                res = anonymous.post("/recommend", json={"users": [1]})
                assert res.status_code == 401
                assert res.headers["www-authenticate"] == "Bearer"
                assert anonymous.get("/metrics").status_code == 401
                assert anonymous.post("/admin/reload", json={"path": "x"}).status_code == 401
                # malformed bodies are refused for the token first
                assert anonymous.post("/recommend", content=b"{").status_code == 401
                assert anonymous.get("/health").status_code == 200
                assert anonymous.get("/health").json()["auth"] is True
            with server.client("wrong") as intruder:
                assert intruder.post("/recommend", json={"users": [1]}).status_code == 401
            with server.client() as basic:
                res = basic.post("/recommend", json={"users": [1]},
                                 headers={"Authorization": f"Basic {TOKEN}"})
                assert res.status_code == 401
            with server.client(TOKEN) as member:
                assert member.post("/recommend", json={"users": [1]}).status_code == 200
                assert member.get("/metrics").status_code == 200

    check(create_app(mf, token=TOKEN))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    check(create_app(mf))


# -- metrics ---------------------------------------------------------------------------


def test_metrics_count_requests_errors_and_latency(mf):
    with Server(create_app(mf, token="")) as server, server.client() as client:
        for _ in range(3):
            assert client.post("/recommend", json={"users": [1], "k": 2}).status_code == 200
        assert client.post("/recommend", json={"users": [1], "k": 0}).status_code == 422
        assert client.post("/predict", json={"users": [1], "items": [2]}).status_code == 200
        text = client.get("/metrics").text
    assert ('sklearn_recsys_requests_total{endpoint="/recommend",method="POST",status="200"} 3.0'
            in text)
    assert 'sklearn_recsys_request_errors_total{endpoint="/recommend",status="422"} 1.0' in text
    assert 'sklearn_recsys_request_latency_seconds_count{endpoint="/recommend"} 4.0' in text
    assert 'sklearn_recsys_request_latency_seconds_bucket{endpoint="/predict",le="0.1"}' in text
    assert "sklearn_recsys_requests_in_progress" in text
    assert 'sklearn_recsys_model_calls_total{method="recommend"} 3.0' in text
    assert 'sklearn_recsys_model_calls_total{method="predict"} 1.0' in text
    assert "sklearn_recsys_batch_requests_bucket" in text
    assert "sklearn_recsys_model_generation 0.0" in text


# -- batching --------------------------------------------------------------------------


def test_concurrent_requests_are_batched(mf):
    n_threads, per_thread = 32, 4
    expected = {u: mf.recommend([u], k=5)[0][0].tolist() for u in range(n_threads)}

    def worker(u, client):
        return [client.post("/recommend", json={"users": [u], "k": 5}) for _ in range(per_thread)]

    with Server(create_app(mf, token="", max_wait_ms=20, max_batch_size=64)) as server:
        with server.client() as client, ThreadPoolExecutor(n_threads) as pool:
            answers = list(pool.map(lambda u: worker(u, client), range(n_threads)))
            health = client.get("/health").json()
            metrics = client.get("/metrics").text
    for u, group in enumerate(answers):
        for answer in group:
            assert answer.status_code == 200
            assert answer.json()["items"] == [expected[u]]
    n_requests = n_threads * per_thread
    assert health["recommend_requests"] == n_requests
    assert health["model_calls"]["recommend"] < n_requests / 2
    # some model calls answered several requests
    assert metric(metrics, 'sklearn_recsys_batch_requests_bucket{le="1.0"}') < metric(
        metrics, "sklearn_recsys_batch_requests_count"
    )


def test_batches_respect_max_batch_size(mf):
    with Server(create_app(mf, token="", max_wait_ms=30, max_batch_size=4)) as server:
        with server.client() as client, ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(
                lambda u: client.post("/recommend", json={"users": [u, u + 1], "k": 2}), range(12)
            ))
            metrics = client.get("/metrics").text
    assert all(a.status_code == 200 for a in answers)
    # at most 4 users per model call: every call falls in the le="4.0" bucket
    count = metric(metrics, "sklearn_recsys_batch_users_count")
    assert metric(metrics, 'sklearn_recsys_batch_users_bucket{le="4.0"}') == count >= 6


# -- hot swap --------------------------------------------------------------------------


class SlowPopularity(Popularity):
    """Popularity whose recommend takes a while (a request stays in flight)."""

    computing = threading.Event()

    def recommend(self, users, k=10, **kwargs):
        self.computing.set()
        time.sleep(0.4)
        return super().recommend(users, k, **kwargs)


def test_hot_swap_while_requests_are_in_flight(interactions, mf, tmp_path):
    path = tmp_path / "mf.safetensors"
    sklearn_recsys.save(mf, path)
    slow = SlowPopularity().fit(interactions)
    old_answer = slow.recommend([2], k=3)[0][0].tolist()
    new_answer = mf.recommend([2], k=3)[0][0].tolist()
    assert old_answer != new_answer
    stop = threading.Event()

    with Server(create_app(slow, token=TOKEN)) as server:
        def hammer():
            codes = []
            with server.client(TOKEN) as client:
                while not stop.is_set():
                    res = client.post("/recommend", json={"users": [1], "k": 2})
                    codes.append(res.status_code)
            return codes

        with ThreadPoolExecutor(4) as pool, server.client(TOKEN) as client:
            in_flight = pool.submit(client.post, "/recommend", json={"users": [2], "k": 3})
            hammers = [pool.submit(hammer) for _ in range(2)]
            # the first request is being computed by the slow model
            assert SlowPopularity.computing.wait(timeout=20)
            res = client.post("/admin/reload", json={"path": str(path)})
            assert res.status_code == 200, res.text
            assert res.json()["generation"] == 1
            after = client.post("/recommend", json={"users": [2], "k": 3})
            time.sleep(0.2)
            stop.set()
            codes = [c for h in hammers for c in h.result()]
            assert in_flight.result().status_code == 200
            # the request in flight finished on the old model
            assert in_flight.result().json()["items"] == [old_answer]
            assert after.json()["items"] == [new_answer]
            assert codes and set(codes) == {200}
            health = client.get("/health").json()
            assert health["model"] == "MatrixFactorization"
            assert health["artifact"] == str(path) and health["generation"] == 1
            assert "sklearn_recsys_model_generation 1.0" in client.get("/metrics").text
            # a failed reload keeps the current model
            missing = str(tmp_path / "missing.safetensors")
            res = client.post("/admin/reload", json={"path": missing})
            assert res.status_code == 400 and "missing.safetensors" in res.json()["detail"]
            assert client.get("/health").json()["generation"] == 1
            res = client.post("/recommend", json={"users": [2], "k": 3})
            assert res.json()["items"] == [new_answer]


# -- artifacts and the command line ----------------------------------------------------


def test_serve_an_artifact(attention, tmp_path):
    path = tmp_path / "attention.safetensors"
    sklearn_recsys.save(attention, path)
    with Server(create_app(str(path), token="")) as server, server.client() as client:
        health = client.get("/health").json()
        assert health["model"] == "AttentionRecommender" and health["artifact"] == str(path)
        res = client.post("/recommend", json={"histories": [[3, 4, 5]], "k": 4})
        assert_ranked(res.json(), *attention.recommend([[3, 4, 5]], k=4))


def test_create_app_checks_its_arguments(mf, interactions):
    with pytest.raises(TypeError, match="fitted recommender"):
        create_app(object())
    with pytest.raises(Exception, match="not fitted"):
        create_app(MatrixFactorization())
    with pytest.raises(ValueError, match="max_batch_size"):
        create_app(mf, max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        create_app(mf, max_wait_ms=-1)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve(mf, tmp_path):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    path = tmp_path / "mf.safetensors"
    sklearn_recsys.save(mf, path)
    port = _free_port()
    env = {**os.environ, TOKEN_ENV: TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sklearn_recsys", "serve", str(path), "--port", str(port),
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health["artifact"] == str(path) and health["auth"] is True
        res = httpx.post(f"{url}/recommend", json={"users": [4]},
                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.json()["items"] == mf.recommend([4])[0].tolist()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
