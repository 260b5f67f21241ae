"""The architecture as the folders show it: labkit/core is the substrate and imports nothing
above it; labkit/bases and labkit/nb build on core; labkit/lab is the machinery around a
notebook; and no two modules import each other in a circle (imports inside functions count)."""
import ast
from pathlib import Path

LABKIT = Path(__file__).resolve().parents[1] / "labkit"
# what each layer may import besides itself
ALLOWED = {"core": {"core"}, "bases": {"core", "bases"}, "nb": {"core", "bases", "nb", "lab"},
           "lab": {"core", "lab"}}


def modules() -> dict[str, Path]:
    out = {}
    for path in LABKIT.rglob("*.py"):
        parts = path.relative_to(LABKIT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path, known: dict) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "labkit":
                found.add(target)
                break
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "top"


def test_each_layer_imports_only_what_it_stands_on():
    bad = [f"{m} -> {d}" for m, deps in graph().items() for d in deps
           if layer(m) in ALLOWED and layer(d) in ALLOWED and layer(d) not in ALLOWED[layer(m)]]
    assert not bad, "imports against the layering: " + ", ".join(sorted(bad))


def test_no_import_cycles():
    g = graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_the_checker_sees_a_cycle_and_a_layer_breach(tmp_path, monkeypatch):
    pkg = tmp_path / "labkit"
    for rel, text in {"core/__init__.py": "", "core/a.py": "from labkit.lab import b\n",
                      "lab/__init__.py": "", "lab/b.py": "def f():\n    from labkit.core import a\n"}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    monkeypatch.setattr(__import__(__name__), "LABKIT", pkg)
    g = graph()
    assert g["labkit.core.a"] == {"labkit.lab.b"} and g["labkit.lab.b"] == {"labkit.core.a"}
    assert layer("labkit.core.a") == "core" and layer("labkit.lab.b") == "lab"
