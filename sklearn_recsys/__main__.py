"""Command line entry point: ``python -m sklearn_recsys`` / ``sklearn-recsys``."""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="sklearn-recsys",
        description="Deep-learning recommenders as scikit-learn estimators.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train every recommender on one dataset, print a results table and "
        "save a figure, CSV and JSON",
    )
    demo.add_argument(
        "--dataset",
        choices=["synthetic", "movielens-100k", "movielens-1m"],
        default="synthetic",
        help="synthetic (embedded, offline; default) or MovieLens",
    )
    demo.add_argument(
        "--data-home",
        default=None,
        help="folder holding (or receiving) the MovieLens data, e.g. ../shared/data",
    )
    demo.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    demo.add_argument("--output-dir", default="sklearn_recsys_results")
    demo.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="subset of models by first word, e.g. --models mf ease lstm",
    )
    demo.add_argument("--quick", action="store_true", help="smaller data, fewer epochs")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    serve = sub.add_parser(
        "serve",
        help="serve a saved model over HTTP (recommend, similar items, predict, "
        "health, Prometheus metrics, hot reload)",
        description="Serve an artifact written by sklearn_recsys.save with FastAPI "
        "and uvicorn; API documentation at /docs. Needs the serve extra: "
        'pip install -c constraints.txt "sklearn_recsys[serve]".',
    )
    serve.add_argument("artifact", help="path of the artifact (.safetensors)")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    serve.add_argument(
        "--token",
        default=None,
        help="bearer token required by every endpoint but /health (default: the "
        "SKLEARN_RECSYS_TOKEN environment variable, which keeps it out of the "
        "process list; none: no authentication)",
    )
    serve.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    serve.add_argument(
        "--max-batch-size", type=int, default=256,
        help="most users merged into one model call (default: 256)",
    )
    serve.add_argument(
        "--max-wait-ms", type=float, default=0.0,
        help="longest wait of a request for others to batch with when the model "
        "is idle (default: 0; requests arriving while it is busy are batched anyway)",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(
            dataset=args.dataset,
            data_home=args.data_home,
            device=args.device,
            output_dir=args.output_dir,
            models=args.models,
            quick=args.quick,
            seed=args.seed,
            progress=not args.no_progress,
        )
    elif args.command == "serve":
        try:
            from .serving import serve as serve_model
        except ImportError as exc:
            parser.exit(1, f"sklearn-recsys serve: {exc}\n")
        if not os.path.isfile(args.artifact):
            parser.exit(1, f"sklearn-recsys serve: no artifact file at {args.artifact!r}\n")
        serve_model(
            args.artifact, host=args.host, port=args.port, token=args.token,
            device=args.device, max_batch_size=args.max_batch_size,
            max_wait_ms=args.max_wait_ms, log_level=args.log_level,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
