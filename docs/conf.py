"""Sphinx configuration of the sklearn_recsys documentation.

Build (warnings are errors; from the repository root)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Environment variables:

``SKLEARN_RECSYS_DOCS_OFFLINE`` (default ``1``)
    ``1``: no intersphinx (no inventory is downloaded, references to NumPy,
    scikit-learn, PyTorch, ... render as plain text) and ``nitpicky = False``.
    ``0``: intersphinx to scikit-learn, PyTorch, skorch, SciPy, NumPy, pandas,
    matplotlib and Python; inventories are downloaded at build time, or read
    from ``SKLEARN_RECSYS_DOCS_INVENTORIES`` when that names a folder holding
    ``<name>.inv`` files (``sklearn.inv``, ``torch.inv``, ...).
``SKLEARN_RECSYS_DOCS_NITPICKY`` (default ``0``)
    ``1``: warn about every unresolved cross-reference (only meaningful with
    intersphinx, i.e. ``SKLEARN_RECSYS_DOCS_OFFLINE=0``).

The example gallery is executed by default; ``-D plot_gallery=0`` on the
command line skips running the examples (fast build).
"""

import ast
import json
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

# The examples train tiny models: one thread is as fast and leaves the other
# cores to whatever else runs (set before torch is imported anywhere).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

import sklearn_recsys  # noqa: E402


def _flag(name, default):
    value = os.environ.get(name, default).strip().lower()
    return value not in ("", "0", "false", "no", "off")


OFFLINE = _flag("SKLEARN_RECSYS_DOCS_OFFLINE", "1")
NITPICKY = _flag("SKLEARN_RECSYS_DOCS_NITPICKY", "0")

# -- Project -----------------------------------------------------------------

project = "sklearn_recsys"
author = "The sklearn_recsys developers"
copyright = "The sklearn_recsys developers, BSD 3-Clause License"
version = release = sklearn_recsys.__version__

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]

templates_path = ["templates"]
exclude_patterns = [
    "_build",
    "templates",
    "generated/benchmarks_*.rst",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"
nitpicky = NITPICKY and not OFFLINE

# -- autodoc / autosummary / numpydoc -------------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
# Class docstrings only (the parameters are documented there, not in __init__).
autoclass_content = "class"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Linking parameter types needs the inventories (numpydoc refers to the NumPy
# glossary and Python's docs, which warn when missing).
numpydoc_xref_param_type = not OFFLINE
numpydoc_xref_aliases = {
    "DataFrame": "pandas.DataFrame",
    "Series": "pandas.Series",
    "ndarray": "numpy.ndarray",
    "RandomState": "numpy.random.RandomState",
    "Bunch": "sklearn.utils.Bunch",
    "NeuralNet": "skorch.NeuralNet",
    "skorch.NeuralNet": "skorch.NeuralNet",
    "Tensor": "torch.Tensor",
    "torch.Tensor": "torch.Tensor",
    "Module": "torch.nn.Module",
    "estimator": "sklearn.base.BaseEstimator",
}
numpydoc_xref_ignore = {
    "of",
    "or",
    "and",
    "shape",
    "default",
    "optional",
    "instance",
    "array-like",
    "sparse",
    "matrix",
    "callable",
    "object",
    "type",
    "n_samples",
    "n_users",
    "n_items",
    "n_components",
    "n_factors",
    "n_features",
    "n_interactions",
    "n_candidates",
    "n_queries",
    "n_rows",
    "k",
    "list",
    "tuple",
    "dict",
    "None",
    "skorch",
    "callbacks",
    "int",
    "float",
    "str",
    "bool",
    "height",
    "width",
}

# -- intersphinx ---------------------------------------------------------------

_INVENTORIES = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "scipy": "https://docs.scipy.org/doc/scipy",
    "pandas": "https://pandas.pydata.org/docs",
    "sklearn": "https://scikit-learn.org/stable",
    "torch": "https://docs.pytorch.org/docs/stable",
    "skorch": "https://skorch.readthedocs.io/en/stable",
    "matplotlib": "https://matplotlib.org/stable",
}


def _intersphinx_mapping():
    if OFFLINE:
        return {}
    local = os.environ.get("SKLEARN_RECSYS_DOCS_INVENTORIES")
    mapping = {}
    for name, url in _INVENTORIES.items():
        inv = Path(local, f"{name}.inv") if local else None
        mapping[name] = (url, str(inv) if inv is not None and inv.is_file() else None)
    return mapping


intersphinx_mapping = _intersphinx_mapping()
intersphinx_timeout = 10

# -- HTML ----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_recsys {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 7,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_sidebars = {"index": [], "install": [], "quickstart": [], "changelog": []}
html_show_sourcelink = True

# -- matplotlib plot directive (user-guide figures) -------------------------------

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"font.size": 10, "savefig.bbox": "tight"}
plot_basedir = str(DOCS)

# -- sphinx-gallery ------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": str(REPO / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|/_",
    "doc_module": ("sklearn_recsys",),
    "reference_url": {"sklearn_recsys": None},
    "backreferences_dir": "generated/backreferences",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "matplotlib_animations": False,
    "plot_gallery": "True",
    "abort_on_example_error": False,
    "show_memory": False,
    # The build log prints the times; the sg_execution_times.rst pages would
    # be written into the source tree (docs/), outside the ignored folders.
    "write_computation_times": False,
    "promote_jupyter_magic": False,
    "first_notebook_cell": None,
    "default_thumb_file": None,
}

warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="Matplotlib is currently using agg, which is a non-GUI backend",
)

# -- benchmarks page: pick up what the benchmark commands wrote -----------------------

_RESULT_MAX_BYTES = 20_000  # larger result files are listed, not shown


def _rst_escape(text):
    """Text that reST shows as it is, keeping balanced ``literal`` spans."""
    parts = text.split("``")
    if len(parts) % 2 == 0:  # unbalanced: escape everything
        parts = [text]
    for n in range(0, len(parts), 2):
        for char in "\\`*_|[]<>":
            parts[n] = parts[n].replace(char, "\\" + char)
    return "``".join(parts)


def _docstring_summary(path):
    try:
        doc = ast.get_docstring(ast.parse(path.read_text()))
    except (SyntaxError, UnicodeDecodeError, OSError):
        doc = None
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def _benchmark_pages(app):
    """Write ``generated/benchmarks_*.rst`` from the ``benchmarks/`` folder.

    The page lists the benchmark scripts (with the first paragraph of their
    docstring), shows ``benchmarks/README.md`` verbatim, the figures the
    scripts wrote to ``benchmarks/results/`` and their JSON results; each
    part says so when there is nothing yet.
    """
    out = DOCS / "generated"
    out.mkdir(exist_ok=True)
    bench = REPO / "benchmarks"
    results = bench / "results"

    scripts = sorted(bench.glob("bench_*.py")) if bench.is_dir() else []
    text = "".join(
        f"``benchmarks/{path.name}``\n"
        f"    {_rst_escape(_docstring_summary(path)) or '(no description)'}\n\n"
        for path in scripts
    ) or "No benchmark script in this checkout.\n"
    _write_if_changed(out / "benchmarks_scripts.rst", text)

    readme = bench / "README.md"
    if readme.is_file():
        text = ".. literalinclude:: /../benchmarks/README.md\n   :language: markdown\n"
    else:
        text = "``benchmarks/README.md`` is not in this checkout yet.\n"
    _write_if_changed(out / "benchmarks_readme.rst", text)

    fig_dir = out / "benchmark_figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    figures = []
    if results.is_dir():
        for path in sorted([*results.glob("*.png"), *results.glob("*.svg")]):
            fig_dir.mkdir(exist_ok=True)
            shutil.copy2(path, fig_dir / path.name)
            figures.append(path.name)
    text = "".join(
        f"``benchmarks/results/{name}``\n\n"
        f".. image:: /generated/benchmark_figures/{name}\n   :width: 90%\n\n"
        for name in figures
    ) or (
        "No figure yet: the benchmark scripts write them to "
        "``benchmarks/results/``, and the next documentation build shows them "
        "here.\n"
    )
    _write_if_changed(out / "benchmarks_figures.rst", text)

    parts = []
    for path in sorted(results.glob("*.json")) if results.is_dir() else []:
        if path.stat().st_size <= _RESULT_MAX_BYTES:
            # Python writes NaN/Infinity, which are not JSON: highlighting such
            # a file as JSON would warn (and -W fail the build).
            language = "json" if _is_strict_json(path) else "text"
            parts.append(
                f"``benchmarks/results/{path.name}``\n\n"
                f".. literalinclude:: /../benchmarks/results/{path.name}\n"
                f"   :language: {language}\n\n"
            )
        else:
            parts.append(
                f"``benchmarks/results/{path.name}`` "
                f"({path.stat().st_size // 1000} kB, not shown)\n\n"
            )
    text = "".join(parts) or (
        "No result yet: each benchmark script writes "
        "``benchmarks/results/<name>.json``.\n"
    )
    _write_if_changed(out / "benchmarks_results.rst", text)


def _is_strict_json(path):
    def reject(constant):
        raise ValueError(constant)

    try:
        json.loads(path.read_text(), parse_constant=reject)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """Leave scikit-learn's metadata-routing plumbing out of the class pages.

    Its docstrings link to scikit-learn's user guide, which only resolves with
    intersphinx; the estimators add nothing to it.
    """
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn.utils._metadata_requests"):
        return True
    return None


_SKLEARN_REF = re.compile(r":ref:`(?:([^`<]*?)\s*<[^`>]+>|([^`<]+))`")


def _plain_sklearn_refs(app, what, name, obj, options, lines):
    """Offline, render the ``:ref:`` roles of inherited scikit-learn docstrings as text.

    ``set_output`` and friends link to labels of scikit-learn's own user guide,
    which only resolve with intersphinx.
    """
    module = getattr(obj, "__module__", None) or ""
    if OFFLINE and module.startswith("sklearn."):
        lines[:] = [
            _SKLEARN_REF.sub(lambda m: m.group(1) or m.group(2), line) for line in lines
        ]


def setup(app):
    app.connect("builder-inited", _benchmark_pages)
    app.connect("autodoc-skip-member", _skip_metadata_routing)
    app.connect("autodoc-process-docstring", _plain_sklearn_refs)
