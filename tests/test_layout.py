"""benchmarks/ in rooms on floors: each module imports only from rooms on lower floors
or from its own room, and no chain of imports comes back to where it started. Read
from the source with `ast` (function-level imports included), so a move that breaks
the order fails here, not in a user's traceback."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lower floors first: a room may import from any floor below its own.
FLOORS = {
    "pipe": 0, "options": 0,             # the pipe protocol, the command-line grammar
    "run": 1,                            # one run: harness, progress, summary, parity
    "parallel": 2, "report": 2, "micro": 2,
    "campaign": 3,                       # the driver reads the report's statistics
    "cli": 4, "__main__": 5,
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str, modules: set[str]) -> set[str]:
    """Every module of `package` that `path` imports, anywhere in the file: `from a.b
    import c` is a.b.c when c is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
    return found & modules


def graph(root: Path, package: str = "benchmarks") -> dict[str, set[str]]:
    """module -> the modules of `package` it imports."""
    files = {module_name(p, root): p for p in (root / package).rglob("*.py")}
    return {m: imports(p, package, set(files)) - {m} for m, p in files.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward(edges: dict[str, set[str]], floors: dict[str, int]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets
                  if room(a) != room(b) and room(b) and floors.get(room(b), 99) >= floors.get(room(a), -1))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node, path):
        if node in path:
            found.append(path[path.index(node):] + [node])
            return
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, path + [node])
        done.add(node)

    for node in sorted(edges):
        visit(node, [])
    return found


def test_every_room_has_a_floor():
    rooms = {room(m) for m in graph(ROOT)} - {""}
    assert rooms <= set(FLOORS), f"rooms without a floor in FLOORS: {sorted(rooms - set(FLOORS))}"


def test_no_import_runs_up_a_floor():
    assert upward(graph(ROOT), FLOORS) == []


def test_no_import_circle():
    assert cycles(graph(ROOT)) == []


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path):
    pkg = tmp_path / "benchmarks"
    for name, text in {"__init__.py": "", "pipe.py": "from benchmarks.run import harness\n",
                       "run/__init__.py": "", "run/harness.py": "def f():\n    from benchmarks import pipe\n",
                       "cli.py": "import benchmarks.run.harness\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    edges = graph(tmp_path)
    assert upward(edges, FLOORS) == ["benchmarks.pipe -> benchmarks.run.harness"]
    assert [set(c) for c in cycles(edges)] == [{"benchmarks.pipe", "benchmarks.run.harness"}]
