"""The package tree is the architecture (docs/architecture.md): these tests keep it so.

Read from the code's own imports (ast, nothing run): the package root holds only `__init__`
and `__main__`; every subpackage says its role in its docstring; each package imports only the
packages its row of ALLOWED names, so the dependency graph between packages has no circle and
the CLI side and the worker side stay apart. A new arrow is a design decision: add it to
ALLOWED (and to the architecture doc) on purpose, never by accident.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parents[1] / "spotctl"

ALLOWED: dict[str, set[str]] = {
    # the ground: nothing of spotctl
    "models": set(),
    "files": set(),
    "node_agent": set(),
    # shared
    "policy": {"models"},
    "config": {"models"},
    "catalog": {"models"},
    "traces": {"catalog", "models"},
    "codec": {"config", "files"},
    "remote": {"files", "models"},
    "clouds": {"catalog", "config", "files", "models", "node_agent", "policy", "remote", "traces"},
    "storage": {"clouds", "config", "files", "models"},
    "fleet": {"config", "models", "policy"},  # the fleet's memory: written by activities, read by the CLI too
    # worker side
    "workflows": {"models", "policy", "activities"},  # activities: typed references only, passed through
    "notify": {"clouds", "config", "models"},
    "activities": {"clouds", "config", "fleet", "models", "node_agent", "notify", "policy", "remote", "storage"},
    "worker": {"activities", "client", "clouds", "codec", "config", "models", "notify", "storage", "workflows"},
    # CLI side
    "task": {"models", "policy"},
    "launch": {"catalog", "clouds", "config", "models", "policy", "storage", "task"},
    "client": {"codec", "config", "models", "policy", "storage", "workflows"},
    "embedded": {"client", "codec", "config", "models", "node_agent", "notify"},
    "dashboard": {"catalog", "client", "clouds", "config", "fleet", "models", "policy"},  # `spotctl dashboard`'s web app
    "cli": {"catalog", "client", "clouds", "codec", "config", "dashboard", "embedded", "fleet", "launch", "models",
            "policy", "storage", "task", "worker"},
}
"""package -> the packages it may import. `worker` may use client/ only to connect; `cli` may
start a worker (`spotctl worker`)."""

CLI_SIDE = {"cli", "dashboard", "launch", "task"}
"""embedded/ is the deployment: it starts a worker and sweeps callback groups, so it is neither side."""
WORKER_SIDE = {"worker", "workflows", "activities", "notify", "remote"}


def package_imports() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2:
            continue
        here = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] == "spotctl" and len(bits) > 1 and (ROOT / bits[1]).is_dir() and bits[1] != here:
                    found[here][bits[1]].add(str(path.relative_to(ROOT.parent)))
    return found


def test_the_package_root_holds_only_init_and_main():
    modules = sorted(p.name for p in ROOT.glob("*.py"))
    assert modules == ["__init__.py", "__main__.py"]


def test_every_package_says_its_role():
    packages = [p for p in ROOT.rglob("__init__.py") if "__pycache__" not in p.parts]
    missing = [str(p.relative_to(ROOT.parent)) for p in packages
               if p.parent != ROOT and not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, f"packages without a docstring naming their role: {missing}"
    top = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top == set(ALLOWED), f"a package without a row in ALLOWED (or a row without a package): {top ^ set(ALLOWED)}"


def test_each_package_imports_only_what_it_may():
    stray = {f"{a} -> {b}": sorted(files) for a, deps in package_imports().items()
             for b, files in deps.items() if b not in ALLOWED.get(a, set())}
    assert not stray, f"imports the layout does not allow (docs/architecture.md): {stray}"


def test_the_packages_import_each_other_without_a_circle():
    graph = {a: set(deps) for a, deps in package_imports().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("circle: " + " -> ".join(path[path.index(nxt):] + [node, nxt]
                                                          if nxt in path else path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_cli_side_and_worker_side_stay_apart():
    imports = package_imports()
    crossing = {f"{a} -> {b}" for a in WORKER_SIDE for b in imports.get(a, {}) if b in CLI_SIDE}
    crossing |= {f"{a} -> {b}" for a in CLI_SIDE - {"cli"} for b in imports.get(a, {}) if b in WORKER_SIDE}
    assert not crossing, f"a worker-side package imports a CLI-side one (or back): {sorted(crossing)}"
    assert not any("cli" in deps for deps in imports.values()), "nothing imports cli/"
