"""The architecture holds: packages import only from the layers above them, no module grows
past 400 lines, and methods are told apart only by their registry."""

import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gcsampler"
# Each layer may import from itself and the layers before it (docs/architecture.md).
LAYERS = ("_version", "core", "threshold", "splitting", "factorization", "classify", "runs",
          "plots", "cli")
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def layer(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_layers(path):
    """The gcsampler layers ``path`` imports from (module level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "gcsampler" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if layer(p) != "__init__"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    own = LAYERS.index(layer(path))
    upward = {name for name in imported_layers(path) if LAYERS.index(name) > own}
    assert not upward, f"{path.relative_to(PACKAGE)} imports from a later layer: {upward}"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_methods_are_told_apart_only_by_the_registry():
    """No `method == "splitting"` anywhere (the pattern finds one: see the last line)."""
    names = r"""["'](rejection|splitting)["']"""
    pattern = re.compile(rf"[=!]=\s*{names}|{names}\s*[=!]=")
    found = [f"{p.relative_to(PACKAGE)}:{i + 1}" for p in MODULES
             for i, line in enumerate(p.read_text().splitlines()) if pattern.search(line)]
    assert not found
    assert pattern.search('if cfg.method == "splitting":') and pattern.search("'rejection' != m")


# Import names whose distribution is named otherwise.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "absl": "absl-py"}


def test_every_imported_package_is_declared():
    """What the package imports is a dependency, or an extra (imported where it is needed,
    with a one-line hint when it is missing)."""
    import sys
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ]", spec)[0].lower()
                for spec in project["dependencies"] + sum(
                    (v for k, v in project["optional-dependencies"].items() if k != "test"), [])}
    imported = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported
                   if name not in sys.stdlib_module_names and name != "gcsampler"}
    assert {DISTRIBUTIONS.get(name, name) for name in third_party} - declared == set()
