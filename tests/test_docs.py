"""Checks of the documentation that need no Sphinx.

* every public name (``__all__`` of the package and its subpackages) has an
  entry in the API reference, and every entry there exists;
* the code of the quick start and of the user guide runs (doctests);
* the gallery examples have the docstring title sphinx-gallery needs;
* the docs' ``conf.py`` builds offline by default (no intersphinx);
* (when numpydoc is installed) public docstrings document exactly the
  parameters of their signature.

Building the HTML itself (``python -m sphinx -W --keep-going -b html docs
docs/_build/html``) is a separate CI step: see ``docs/developers.rst``.
"""

import ast
import doctest
import importlib
import inspect
import re
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXAMPLES = REPO / "examples"

PUBLIC_MODULES = [
    "sklearn_recsys",
    "sklearn_recsys.ann",
    "sklearn_recsys.datasets",
    "sklearn_recsys.export",
    "sklearn_recsys.metrics",
    "sklearn_recsys.model_selection",
    "sklearn_recsys.nn",
    "sklearn_recsys.serving",
]


def _public_names():
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if not name.startswith("__"):
                names.append(f"{module_name}.{name}")
    return names


def _api_entries():
    """Fully qualified names listed in the autosummary tables of api.rst."""
    entries = []
    module = None
    in_autosummary = False
    for line in (DOCS / "api.rst").read_text().splitlines():
        match = re.match(r"\.\. currentmodule:: (\S+)", line)
        if match:
            module = match.group(1)
            continue
        if line.startswith(".. autosummary::"):
            in_autosummary = True
            continue
        if in_autosummary:
            if line and not line.startswith(" "):
                in_autosummary = False
            elif line.strip() and not line.strip().startswith(":"):
                entries.append(f"{module}.{line.strip()}")
    return entries


def test_api_reference_lists_every_public_name():
    listed = set(_api_entries())
    missing = [name for name in _public_names() if name not in listed]
    assert not missing, (
        f"Public names missing from docs/api.rst: {missing}. Add each one to "
        "the autosummary table of its module."
    )


def test_api_reference_entries_exist():
    public = set(_public_names())
    unknown = [name for name in _api_entries() if name not in public]
    assert not unknown, (
        f"docs/api.rst lists names that are not in their module's __all__: {unknown}."
    )


def _rst_with_doctests():
    return sorted(
        path.relative_to(REPO).as_posix()
        for path in DOCS.rglob("*.rst")
        if not {"_build", "generated", "auto_examples"} & set(path.parts)
        and ">>>" in path.read_text()
    )


@pytest.mark.parametrize("path", _rst_with_doctests())
def test_rst_doctests(path):
    result = doctest.testfile(
        str(REPO / path),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
        raise_on_error=False,
        verbose=False,
        report=True,
    )
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {path}"


def test_doctested_pages_are_found():
    assert "docs/quickstart.rst" in _rst_with_doctests()


@pytest.mark.parametrize(
    "path", sorted(p.name for p in EXAMPLES.glob("plot_*.py")), ids=str
)
def test_gallery_example_has_a_title(path):
    docstring = ast.get_docstring(ast.parse((EXAMPLES / path).read_text()))
    assert docstring, f"examples/{path} needs a module docstring (sphinx-gallery)."
    lines = docstring.strip().splitlines()
    assert len(lines) >= 2 and set(lines[1]) == {"="} and len(lines[1]) >= len(
        lines[0]
    ), f"examples/{path}: the docstring must start with a title underlined with '='."


def test_gallery_has_readme():
    assert (EXAMPLES / "README.rst").is_file()


def _conf(monkeypatch, **env):
    for name in (
        "SKLEARN_RECSYS_DOCS_OFFLINE",
        "SKLEARN_RECSYS_DOCS_NITPICKY",
        "SKLEARN_RECSYS_DOCS_INVENTORIES",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # conf.py sets thread counts with setdefault; keep the environment as is.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, __import__("os").environ.get(name, "1"))
    return runpy.run_path(str(DOCS / "conf.py"))


def test_docs_conf_is_offline_by_default(monkeypatch):
    conf = _conf(monkeypatch)
    assert conf["intersphinx_mapping"] == {}
    assert conf["nitpicky"] is False


def test_docs_conf_online_and_local_inventories(monkeypatch, tmp_path):
    conf = _conf(monkeypatch, SKLEARN_RECSYS_DOCS_OFFLINE="0")
    mapping = conf["intersphinx_mapping"]
    assert {"sklearn", "torch", "skorch", "scipy", "numpy", "pandas"} <= set(mapping)
    assert all(local is None for _, local in mapping.values())

    (tmp_path / "sklearn.inv").write_bytes(b"")
    conf = _conf(
        monkeypatch,
        SKLEARN_RECSYS_DOCS_OFFLINE="0",
        SKLEARN_RECSYS_DOCS_INVENTORIES=str(tmp_path),
    )
    assert conf["intersphinx_mapping"]["sklearn"][1] == str(tmp_path / "sklearn.inv")
    assert conf["intersphinx_mapping"]["torch"][1] is None


def _documented_objects():
    for full in _public_names():
        module_name, name = full.rsplit(".", 1)
        obj = getattr(importlib.import_module(module_name), name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield full


@pytest.mark.parametrize("name", sorted(_documented_objects()))
def test_docstring_parameters_match_signature(name):
    """PR01/PR02: the Parameters section documents exactly the signature."""
    validate = pytest.importorskip("numpydoc.validate")
    errors = [
        f"{code}: {message}"
        for code, message in validate.validate(name)["errors"]
        if code in {"PR01", "PR02", "GL08"}
    ]
    assert not errors, f"{name}: {errors}"
