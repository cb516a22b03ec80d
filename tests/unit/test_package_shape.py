"""The package's shape: no import cycles, short modules (the studio's app_pages/ and studio/ too),
and an engine free of UI libraries.

Imports are read from the source (every ``import`` statement, also those inside functions), so a
cycle hidden behind a late import counts as a cycle too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "modelkit"
APP_FOLDERS = (ROOT / "app_pages", ROOT / "studio")  # the studio's pages and what they share
MAX_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The modelkit modules ``path`` imports (``from a import b`` counts ``a.b`` if a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in known:
                    found.add(sub)
                elif node.module in known:
                    found.add(node.module)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of module names, or None."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in colour and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if node not in colour and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle through its children
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_modules_are_short():
    paths = [*_modules().values(), *(p for f in APP_FOLDERS for p in sorted(f.rglob("*.py")))]
    long = {
        str(path.relative_to(ROOT)): n
        for path in paths
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def _printed_by_a_fresh_process(code: str) -> str:
    """What ``code`` prints in a new interpreter: what an import loads shows only there."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_engine_never_imports_ui_libraries():
    """Importing every modelkit module loads neither streamlit nor plotly."""
    names = sorted(_modules())
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    if name.endswith('__main__'): continue\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly'))\n"
        "print(','.join(bad))\n"
    )
    assert _printed_by_a_fresh_process(code) == ""


def test_public_api_imports_from_the_top():
    import modelkit

    for name in modelkit.__all__:
        assert getattr(modelkit, name) is not None
    assert issubclass(modelkit.TrainingError, modelkit.ModelkitError)
    assert issubclass(modelkit.DatasetError, modelkit.ModelkitError)


def test_the_app_sidebar_loads_no_evaluation_or_search_libraries():
    """Every page's first load imports the sidebar (device, job registry, training loop):
    scikit-learn, scipy and optuna load when a page needs them, not before (scikit-learn alone
    cost ~3 s of the first load)."""
    code = (
        "import sys, studio.sidebar\n"
        "heavy = ('sklearn', 'optuna', 'scipy')\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    assert _printed_by_a_fresh_process(code) == ""
