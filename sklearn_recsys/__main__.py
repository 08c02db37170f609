"""Command line entry point: ``python -m sklearn_recsys`` / ``sklearn-recsys``."""

import argparse
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
