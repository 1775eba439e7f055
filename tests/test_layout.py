"""The import layering written in README "Code map": engine ← tracker ← ui ← cli ← the API.

Every module of the packages is parsed with ``ast`` (imports inside functions included, so
a lazy import cannot hide a back-edge) and each import of a project module is checked:

* it points to the same layer or a lower one (parttrack.engine 0, parttrack.tracker 1,
  parttrack.ui 2, parttrack.tracker.cli 3, the public API in ``parttrack/`` 4);
* it names the project by its one import name, ``parttrack`` (``engine``, ``tracker``, ``ui`` and
  ``trained`` are only folders of the repository: installed, they are ``parttrack.engine`` …);
* it imports no private name (``_x``) from another module — make it public or move it;
* no inference backend imports another backend (shared helpers live in
  ``engine.runtime.base``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> its package name once installed (pyproject.toml's package-dir)
PACKAGES = {"engine": "parttrack.engine", "tracker": "parttrack.tracker", "ui": "parttrack.ui",
            "trained": "parttrack.trained", "parttrack": "parttrack"}
LAYERS = {"parttrack.engine": 0, "parttrack.trained": 0, "parttrack.tracker": 1, "parttrack.ui": 2,
          "parttrack.tracker.cli": 3, "parttrack": 4}
OLD_NAMES = ("engine", "tracker", "ui", "trained")


def layer(module: str) -> int | None:
    """The layer of a dotted module name, or None for a module outside the project."""
    best = None
    for prefix, n in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, n)
    return None if best is None else best[1]


def project_modules() -> dict[str, Path]:
    mods = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([name, *parts])] = path
    return mods


def imports_of(module: str, path: Path):
    """``(line, imported module, imported names)`` for every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, tuple(a.name for a in node.names)


MODULES = project_modules()


def test_the_packages_are_found():
    assert {"parttrack", "parttrack.api", "parttrack.engine", "parttrack.engine.runtime.base", "parttrack.tracker.batch", "parttrack.tracker.cli", "parttrack.ui.viewer"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_and_stay_public(module):
    path = MODULES[module]
    own = layer(module)
    problems = []
    for line, target, names in imports_of(module, path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if target.split(".")[0] in OLD_NAMES:
            problems.append(f"{where}: imports {target}; the project's one import name is parttrack.{target}")
        there = layer(target)
        if there is None:
            continue
        if there > own:
            problems.append(f"{where}: {module} (layer {own}) imports {target} (layer {there})")
        for name in names:
            if name.startswith("_") and not name.startswith("__") and target != module:
                problems.append(f"{where}: private name {name} imported from {target}")
        if (module.startswith("parttrack.engine.runtime.") and module.endswith("_backend")
                and target.startswith("parttrack.engine.runtime.") and target.endswith("_backend") and target != module):
            problems.append(f"{where}: backend {module} imports backend {target}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_lazy_back_edges(tmp_path):
    """A function-level import of a higher layer is caught (the check is not vacuous)."""
    f = tmp_path / "mod.py"
    f.write_text("def f():\n    from parttrack.ui.viewer import ViewerWindow\n    from parttrack.tracker.batch import _x\n")
    found = list(imports_of("parttrack.engine.mod", f))
    assert [(t, layer(t)) for _, t, _ in found] == [("parttrack.ui.viewer", 2), ("parttrack.tracker.batch", 1)]
    assert found[1][2] == ("_x",)


def test_nothing_imports_the_folder_names():
    """Tests and scripts too use ``parttrack.<package>``: run from the repository, ``import
    tracker`` would load a second copy of a module (or another distribution's ``tracker``)."""
    problems = []
    for folder in ("tests", "scripts", "trained"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, target, _ in imports_of(f"{folder}.x", path):
                if target.split(".")[0] in OLD_NAMES:
                    problems.append(f"{path.relative_to(ROOT)}:{line}: imports {target}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_folder_names(tmp_path):
    f = tmp_path / "mod.py"
    f.write_text("import tracker.io\nfrom engine import bundle\n")
    assert [t.split(".")[0] for _, t, _ in imports_of("tests.mod", f)] == ["tracker", "engine"]
