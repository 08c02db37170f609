"""HTTP serving under load: throughput and latency of ``/recommend``, then
robustness against malformed requests.

Models: ``MatrixFactorization(loss="softmax")`` and ``AttentionRecommender()``
with package defaults (``random_state=0``), trained on MovieLens-100K
(every rating an interaction, timestamps ordering the sequences) when
``--data-home`` holds ``ml-100k/``, else on synthetic data of the same
shape (``make_interactions(943, 1682, density=0.06, sequential=True)``);
the output says which. Each model is saved with ``sklearn_recsys.save`` and
served by the command line, ``python -m sklearn_recsys serve ARTIFACT``, in a
subprocess on a free localhost port with a bearer token (``OMP_NUM_THREADS``
= ``--threads`` for the server's torch).

Load: for 1, 8 and 32 concurrent clients (asyncio tasks in this process, each
with its own keep-alive HTTP/1.1 connection on a minimal client), a fixed
number of ``POST /recommend`` requests (``--requests``, default 400; each
level also stops after ``--max-seconds``), one random known user each,
``k=10``, after 20 warm-up requests. Reported per level: requests/s (wall
clock of the level), p50/p99 latency as seen by the client and as spent in
the server (its ``Server-Timing`` header), the server process's CPU time per
request (``/proc/<pid>/stat``, all threads), failed requests (any status but
200, a transport error, or a row without 10 items; must be 0) and requests
per model call (from the server's ``/health`` counters: the micro-batcher's
effect). Each model is served three times: without batching
(``--max-batch-size 1``), with the defaults (``--max-batch-size 256
--max-wait-ms 0``: requests that queue up while the model is busy share its
next call) and with a 2 ms wait for company (``--max-wait-ms 2``).

Robustness (the default server of each model): ``--malformed`` requests
(default 1,000; 8 concurrent clients) cycling through bad JSON, non-JSON bodies,
wrong types, missing and unknown fields, ``k <= 0``, unknown allow-list
items, mismatched ``/predict`` pairs, deeply nested JSON, missing tokens,
wrong methods and paths. Every answer must be a 4xx (no 5xx, no dropped
connection); afterwards ``/health`` and a valid ``/recommend`` must still
answer 200.

Client and server share the machine (localhost only), so requests/s and the
client-side latencies are a lower bound of what the server alone sustains;
the server-side columns are the server's own view.

Usage (from the repository root)::

    python benchmarks/bench_serve.py          # ~2 min on 2 CPUs, 1 of them fitting
    python benchmarks/bench_serve.py --quick  # 2 epochs, 100 requests per level: ~1.5 min
    python benchmarks/bench_serve.py --data-home /path/with/ml-100k --threads 2

Results: a markdown table on stdout and ``benchmarks/results/serve.json``
(environment, data, settings, one row per model x batching x clients, the
malformed-request summary). Exit status 1 when a request failed or the
server did not survive the malformed requests.
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (  # noqa: E402
    REPO_ROOT,
    Timer,
    add_common_arguments,
    describe_environment,
    format_environment,
    load_movielens_100k,
    markdown_table,
    set_threads,
    write_json,
)

import sklearn_recsys  # noqa: E402
from sklearn_recsys import AttentionRecommender, MatrixFactorization  # noqa: E402
from sklearn_recsys.datasets import make_interactions  # noqa: E402

TOKEN = "bench-serve-token"
LEVELS = (1, 8, 32)
WARMUP = 20
BATCHING = {  # name -> serve options
    "off": {"max_batch_size": 1, "max_wait_ms": 0.0},
    "default": {"max_batch_size": 256, "max_wait_ms": 0.0},
    "wait 2 ms": {"max_batch_size": 256, "max_wait_ms": 2.0},
}
MALFORMED_ON = "default"


# -- data and models -------------------------------------------------------------------


def load_data(args):
    """``(interactions, description)``: MovieLens-100K, else synthetic."""
    ml = load_movielens_100k(args.data_home)
    if ml is not None:
        return ml.interactions[["user", "item", "timestamp"]], "MovieLens-100K"
    data = make_interactions(943, 1682, density=0.06, sequential=True, random_state=0)
    print("MovieLens-100K not found: synthetic data of its shape instead.", flush=True)
    return data.interactions, "synthetic (make_interactions(943, 1682, density=0.06, "\
        "sequential=True, random_state=0))"


def models(quick):
    extra = {"max_iter": 2} if quick else {}
    return {
        "MatrixFactorization(loss='softmax')": MatrixFactorization(
            loss="softmax", random_state=0, **extra
        ),
        "AttentionRecommender()": AttentionRecommender(random_state=0, **extra),
    }


# -- the server ------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m sklearn_recsys serve`` in a subprocess, until ``/health`` answers."""

    def __init__(self, artifact, *, threads, device, max_batch_size, max_wait_ms, log):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "sklearn_recsys", "serve", str(artifact),
            "--port", str(self.port), "--device", device,
            "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms),
            "--log-level", "warning",
        ]
        self.env = {**os.environ, "SKLEARN_RECSYS_TOKEN": TOKEN,
                    "OMP_NUM_THREADS": str(threads)}
        self.log = log

    def __enter__(self):
        import httpx

        self.proc = subprocess.Popen(self.command, env=self.env, cwd=REPO_ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {' '.join(self.command)}")
            time.sleep(0.2)

    def alive(self):
        return self.proc.poll() is None

    def cpu_seconds(self):
        """User + system CPU time of the server process (all threads), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # not Linux
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
            self.proc.wait()


# -- load ------------------------------------------------------------------------------


def health(url):
    import httpx

    return httpx.get(f"{url}/health", timeout=10).json()


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection (asyncio streams).

    The load generator's own cost per request is kept far below the
    server's (httpx's pool costs about as much CPU as the server here), so
    that the client, sharing the machine, bounds the measurement less.
    """

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def post(self, path, body):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None


async def _load(port, users, concurrency, max_seconds):
    latencies, server_ms, failures = [], [], Counter()
    next_request = 0
    deadline = time.perf_counter() + max_seconds

    async def worker():
        nonlocal next_request
        connection = Connection(port)
        while next_request < len(users) and time.perf_counter() < deadline:
            body = json.dumps({"users": [int(users[next_request])], "k": 10}).encode()
            next_request += 1
            start = time.perf_counter()
            try:
                status, headers, answer = await connection.post("/recommend", body)
                ok = status == 200 and len(json.loads(answer)["items"][0]) == 10
                timing = headers.get("server-timing", "")
                if timing.startswith("app;dur="):
                    server_ms.append(float(timing[len("app;dur="):]))
                if not ok:
                    failures[f"status {status}"] += 1
            except (OSError, ValueError, KeyError, IndexError, asyncio.IncompleteReadError) as exc:
                failures[type(exc).__name__] += 1
                await connection.close()
            latencies.append(time.perf_counter() - start)
        await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return np.array(latencies), np.array(server_ms), failures, wall


def run_level(server, users, concurrency, max_seconds):
    url = server.url
    before = health(url)
    cpu_before, client_cpu = server.cpu_seconds(), time.process_time()
    latencies, server_ms, failures, wall = asyncio.run(
        _load(server.port, users, concurrency, max_seconds)
    )
    client_cpu = time.process_time() - client_cpu
    cpu = None if cpu_before is None else server.cpu_seconds() - cpu_before
    after = health(url)
    requests = after["recommend_requests"] - before["recommend_requests"]
    calls = after["model_calls"].get("recommend", 0) - before["model_calls"].get("recommend", 0)
    return {
        "clients": concurrency,
        "requests": len(latencies),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "mean_ms": float(latencies.mean() * 1e3),
        "server_p50_ms": float(np.percentile(server_ms, 50)) if len(server_ms) else None,
        "server_p99_ms": float(np.percentile(server_ms, 99)) if len(server_ms) else None,
        "server_cpu_ms_per_request": None if cpu is None else cpu * 1e3 / len(latencies),
        "client_cpu_ms_per_request": client_cpu * 1e3 / len(latencies),
        "requests_per_model_call": requests / calls if calls else None,
        "wall_s": wall,
    }


# -- malformed requests ----------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
MALFORMED = [
    ("bad JSON", "POST", "/recommend", {"content": b'{"users": [1,', "headers": JSON}),
    ("form body", "POST", "/recommend", {
        "content": b"users=1&k=10",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("empty body", "POST", "/recommend", {"content": b"", "headers": JSON}),
    ("JSON null", "POST", "/recommend", {"content": b"null", "headers": JSON}),
    ("JSON array", "POST", "/recommend", {"json": [1, 2, 3]}),
    ("users not a list", "POST", "/recommend", {"json": {"users": "1"}}),
    ("k a string", "POST", "/recommend", {"json": {"users": [1], "k": "10"}}),
    ("k = 0", "POST", "/recommend", {"json": {"users": [1], "k": 0}}),
    ("k < 0", "POST", "/recommend", {"json": {"users": [1], "k": -5}}),
    ("missing users", "POST", "/recommend", {"json": {"k": 10}}),
    ("unknown field", "POST", "/recommend", {"json": {"users": [1], "kk": 10}}),
    ("nested garbage", "POST", "/recommend", {"json": {"users": [[[[1]]]], "k": {"a": 1}}}),
    ("float id", "POST", "/recommend", {"json": {"users": [1.5]}}),
    ("unknown allow-list item", "POST", "/recommend",
     {"json": {"users": [1], "items": [10**9]}}),
    ("deeply nested JSON", "POST", "/recommend",
     {"content": b"[" * 100_000 + b"]" * 100_000, "headers": JSON}),
    ("predict pairs of unequal length", "POST", "/predict",
     {"json": {"users": [1, 2], "items": [1]}}),
    ("similar-items k < 0", "POST", "/similar-items", {"json": {"items": [1], "k": -1}}),
    ("reload without path", "POST", "/admin/reload", {"json": {}}),
    ("no token", "POST", "/recommend",
     {"json": {"users": [1]}, "headers": {"Authorization": ""}}),
    ("wrong token", "POST", "/recommend",
     {"json": {"users": [1]}, "headers": {"Authorization": "Bearer nope"}}),
    ("wrong method", "GET", "/recommend", {}),
    ("unknown path", "POST", "/recommendations", {"json": {"users": [1]}}),
]


async def _malformed(url, n, concurrency):
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses, next_request = Counter(), 0
    by_kind = {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        async def worker():
            nonlocal next_request
            while next_request < n:
                name, method, path, kwargs = MALFORMED[next_request % len(MALFORMED)]
                next_request += 1
                try:
                    res = await client.request(method, path, **kwargs)
                    status = str(res.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                statuses[status] += 1
                by_kind.setdefault(name, Counter())[status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses, by_kind


def run_malformed(server, n, user):
    import httpx

    with Timer() as timer:
        statuses, by_kind = asyncio.run(_malformed(server.url, n, 8))
    bad = {s: c for s, c in statuses.items() if not (s.isdigit() and 400 <= int(s) < 500)}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    health_ok = httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    res = httpx.post(f"{server.url}/recommend", json={"users": [user], "k": 10},
                     headers=auth, timeout=10)
    recommend_ok = res.status_code == 200 and len(res.json()["items"][0]) == 10
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "statuses_by_kind": {k: dict(v) for k, v in by_kind.items()},
        "not_4xx": sum(bad.values()),
        "server_alive": server.alive(),
        "health_after": health_ok,
        "valid_recommend_after": recommend_ok,
        "wall_s": timer.elapsed,
    }


def _ms(value):
    return "" if value is None else f"{value:.1f}"


# -- main ------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per concurrency level (default 400; --quick 100)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="time cap of one concurrency level (default: 60)")
    parser.add_argument("--malformed", type=int, default=None,
                        help="malformed requests per model (default 1000; --quick 200)")
    parser.add_argument("--device", default="cpu", help="device the server loads onto")
    args = parser.parse_args(argv)
    n_requests = args.requests or (100 if args.quick else 400)
    n_malformed = args.malformed or (200 if args.quick else 1000)
    set_threads(args.threads)
    env = describe_environment(args.device)
    print("# Serving /recommend over HTTP" + (" (--quick)" if args.quick else ""))
    print(format_environment(env), flush=True)
    start = time.perf_counter()
    X, dataset = load_data(args)
    user_ids = np.unique(X["user"].to_numpy())
    rng = np.random.default_rng(0)
    rows, malformed, fits = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            for name, estimator in models(args.quick).items():
                with Timer() as timer:
                    estimator.fit(X)
                artifact = Path(tmp) / f"{type(estimator).__name__}.safetensors"
                sklearn_recsys.save(estimator, artifact)
                fits[name] = {"fit_s": timer.elapsed, "artifact_bytes": artifact.stat().st_size}
                print(f"\n{name}: fitted in {timer.elapsed:.1f} s on {dataset}", flush=True)
                for batching, options in BATCHING.items():
                    with ServerProcess(artifact, threads=args.threads, device=args.device,
                                       log=log, **options) as server:
                        run_level(server, rng.choice(user_ids, WARMUP), 4, args.max_seconds)
                        for clients in LEVELS:
                            row = run_level(server, rng.choice(user_ids, n_requests),
                                            clients, args.max_seconds)
                            rows.append({"model": name, "batching": batching, **row})
                            print(f"  batching {batching:9s} {clients:2d} clients: "
                                  f"{row['requests_per_s']:7.1f} req/s, p50 "
                                  f"{row['p50_ms']:6.1f} ms, p99 {row['p99_ms']:6.1f} ms, "
                                  f"failed {row['failed']}", flush=True)
                        if batching == MALFORMED_ON:
                            malformed[name] = run_malformed(server, n_malformed,
                                                            int(user_ids[0]))
                            print(f"  malformed: {malformed[name]['statuses']}", flush=True)
        server_log = log_path.read_text(errors="replace")[-4000:]
    wall = time.perf_counter() - start

    columns = [("model", "model"), ("batching", "batching"), ("clients", "clients"),
               ("requests", "requests"), ("failed", "failed"), ("rps", "requests/s"),
               ("p50", "p50 ms"), ("p99", "p99 ms"), ("sp50", "server p50 ms"),
               ("sp99", "server p99 ms"), ("cpu", "server CPU ms / request"),
               ("per_call", "requests / model call")]
    table = [{**r, "rps": f"{r['requests_per_s']:.0f}", "p50": f"{r['p50_ms']:.1f}",
              "p99": f"{r['p99_ms']:.1f}", "sp50": _ms(r["server_p50_ms"]),
              "sp99": _ms(r["server_p99_ms"]), "cpu": _ms(r["server_cpu_ms_per_request"]),
              "per_call": "" if r["requests_per_model_call"] is None
              else f"{r['requests_per_model_call']:.1f}"} for r in rows]
    print(f"\n### /recommend (k=10, one random known user per request) on {dataset}\n")
    print(markdown_table(table, columns))
    print(f"\n### {n_malformed} malformed requests per model (8 concurrent clients)\n")
    print(markdown_table([
        {"model": name, "statuses": ", ".join(f"{s}: {c}" for s, c in m["statuses"].items()),
         "not_4xx": m["not_4xx"], "after": "yes" if m["health_after"]
         and m["valid_recommend_after"] and m["server_alive"] else "NO"}
        for name, m in malformed.items()
    ], [("model", "model"), ("statuses", "answers"), ("not_4xx", "not 4xx"),
        ("after", "/health and /recommend answer afterwards")]))

    failed = sum(r["failed"] for r in rows)
    survived = all(m["not_4xx"] == 0 and m["server_alive"] and m["health_after"]
                   and m["valid_recommend_after"] for m in malformed.values())
    path = write_json("serve", {
        "environment": env,
        "data": {"dataset": dataset, "n_interactions": len(X), "n_users": len(user_ids),
                 "n_items": int(X["item"].nunique())},
        "settings": {"quick": args.quick, "threads": args.threads, "device": args.device,
                     "requests_per_level": n_requests, "max_seconds": args.max_seconds,
                     "levels": list(LEVELS), "warmup": WARMUP, "batching": BATCHING,
                     "malformed": n_malformed},
        "fits": fits,
        "load": rows,
        "malformed": malformed,
        "failed_requests": failed,
        "survived_malformed": survived,
        "server_log_tail": server_log,
        "wall_time_s": wall,
    }, args.output)
    print(f"\nFailed requests: {failed}. Server survived the malformed requests: "
          f"{'yes' if survived else 'NO'}. Total {wall:.0f} s. Results written to {path}")
    return 0 if failed == 0 and survived else 1


if __name__ == "__main__":
    sys.exit(main())
