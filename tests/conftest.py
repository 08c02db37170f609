"""Test-session settings shared by every test module."""

import os

import torch


def pytest_configure(config):
    # pytest-xdist runs one process per core (``-n 2`` on the 2-core CI):
    # torch's default of one intra-op thread per core in every worker would
    # oversubscribe the cores, and its spinning OpenMP threads then slow the
    # suite down many times over. Give each worker its share of the cores.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
