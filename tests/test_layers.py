"""The package's import graph keeps its layers.

input -> nn -> training -> estimators -> evaluation/deployment/CLI: a module imports
from its own layer or the layers below, never above (imports inside
functions included).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_recsys"

LAYERS = {
    "input": [
        "_input", "_content", "_attributes", "_sequence_data", "_topk", "_ranking", "_docs",
        "datasets",
    ],
    "nn": ["nn"],
    "training": ["_training", "_objectives", "_fold_in", "_gibbs", "_portable", "_privacy"],
    "estimators": [
        "_base", "_evaluation", "_neural", "_factorization", "_sequence", "_baselines",
    ],
    "evaluation/deployment/CLI": [
        "metrics", "model_selection", "_demo", "_artifact", "export", "serving", "ann",
        "__main__",
        "__init__",
    ],
}
ORDER = list(LAYERS)


def _layer(module):
    """Layer of a dotted module path relative to the package."""
    head = module.split(".")[0]
    for layer, names in LAYERS.items():
        if head in names:
            return layer
    raise KeyError(f"sklearn_recsys.{module} belongs to no layer: add it to LAYERS.")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name, path):
    """Package-relative modules imported by a module (anywhere in it)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        package = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
                if not node.module:  # "from . import x": a module, or a name of the package
                    for alias in node.names:
                        candidate = Path(PACKAGE, *base, alias.name)
                        if candidate.with_suffix(".py").exists() or candidate.is_dir():
                            yield ".".join([*base, alias.name])
                        else:
                            yield ".".join(base) or "__init__"
                    continue
                yield target
            elif node.module and node.module.startswith("sklearn_recsys"):
                yield node.module.removeprefix("sklearn_recsys").strip(".")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sklearn_recsys."):
                    yield alias.name.removeprefix("sklearn_recsys.")


@pytest.mark.parametrize("name, path", list(_modules()), ids=lambda v: str(v))
def test_no_module_imports_a_higher_layer(name, path):
    own = ORDER.index(_layer(name))
    for target in _imports(name, path):
        if not target:
            continue
        assert ORDER.index(_layer(target)) <= own, (
            f"sklearn_recsys.{name} ({ORDER[own]}) imports sklearn_recsys.{target} "
            f"({_layer(target)}), a higher layer."
        )
