"""The shape of the code, checked on its import graph (issue 21) and on what a command imports
(issue 22): no import circles in any package, no arrow from training/ or inference/ up into app/,
project imports at the top of files except in the named places, modules under 400 lines, and
``pancakes --help`` / ``--version`` without torch."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the [train] extra brings tomli
    import tomli as tomllib

PACKAGES = Path(__file__).resolve().parents[2]
SOURCES = {p.name: p / "src" for p in PACKAGES.iterdir() if (p / "src").is_dir()}
# The only places where a project module is imported inside a function (the lazy package names of
# PEP 562 and the command line that parses before importing the commands; the training commands
# need the optional [train] extra).
LATE_IMPORTS = {
    "pancakes_model",
    "pancakes_data",
    "pancakes_eval",
    "pancakes_model.app.cli",
    "pancakes_model.app.commands",
}
LIMIT = 400


def _modules(src: Path) -> dict[str, Path]:
    out = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at top level?) of a file; imports under ``if TYPE_CHECKING`` are skipped."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.extend((f"{child.module}.{a.name}", top) for a in child.names)
                found.append((child.module, top))
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, True)
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    modules = {name: path for src in SOURCES.values() for name, path in _modules(src).items()}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    late = []
    for name, path in modules.items():
        for target, top in _imports(path):
            if target in modules and target != name and not name.startswith(target + "."):
                edges[name].add(target)
                if not top:
                    late.append((name, target))
    return edges, late


def test_no_import_circles_in_any_package():
    edges, _ = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " → ".join([*stack[stack.index(nxt) :], nxt]))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)


def test_training_and_inference_never_reach_up_into_app():
    edges, _ = _graph()
    up = [
        (a, b)
        for a, targets in edges.items()
        for b in targets
        if a.startswith(("pancakes_model.training", "pancakes_model.inference")) and b.startswith("pancakes_model.app")
    ]
    assert not up, up


def test_project_imports_sit_at_the_top_of_the_file_except_the_named_places():
    _, late = _graph()
    assert not [(a, b) for a, b in late if a not in LATE_IMPORTS], late


def test_no_module_over_the_line_limit():
    long = {
        str(p.relative_to(PACKAGES)): n
        for src in SOURCES.values()
        for p in src.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert not long, long


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], *([c, "--help"] for c in ("segment", "match", "demo", "finetune", "train",
                                                           "evaluate", "export"))],
)  # fmt: skip
def test_help_and_version_import_neither_torch_nor_the_model(argv):
    code = (
        "import sys\n"
        "from pancakes_model.app.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('pancakes_model.network', "
        "'pancakes_model.app.segment', 'pancakes_data')))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out


def _requirement_names(req: str) -> set[str]:
    """The distribution a requirement names, and its extras (``dask[distributed]`` brings
    ``distributed``, the extra's namesake distribution)."""
    name, extras = re.match(r"\s*([\w.-]+)\s*(?:\[([^\]]*)\])?", req).groups()
    return {n.strip().lower().replace("_", "-").replace(".", "-") for n in [name, *(extras or "").split(",")] if n}


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_every_third_party_import_is_a_declared_dependency(package):
    # The torch suites share one environment (issue 22 item 4), where a sibling's dependency would
    # hide one a package forgot to declare; this check keeps "installed as a user would" honest.
    meta = tomllib.loads((PACKAGES / package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [*meta.get("dependencies", []), *(r for rs in meta.get("optional-dependencies", {}).values() for r in rs)]
    declared = set().union(*map(_requirement_names, reqs))
    dists = importlib.metadata.packages_distributions()
    own = {p.name for p in SOURCES[package].iterdir() if p.is_dir()}
    missing = set()
    for path in SOURCES[package].rglob("*.py"):
        for target, _ in _imports(path):
            top = target.split(".")[0]
            if top in sys.stdlib_module_names or top in own or top == "__future__":
                continue
            names = {d.lower().replace("_", "-").replace(".", "-") for d in dists.get(top, [top])}
            if not names & declared and top.replace("_", "-") not in declared:
                missing.add((str(path.relative_to(PACKAGES)), top))
    assert not missing, sorted(missing)
