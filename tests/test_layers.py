"""The package layout is the architecture: imports only point down the layers, and nothing is a cycle.

Read from the source with ``ast`` (no import side effects), so a new upward import fails here before
a reviewer has to spot it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mcp_sync_auth"

# Lower numbers sit lower. A module may import its own package and anything of a lower rank; two
# packages of the same rank (the login path and the MCP client) never import each other.
RANKS = {
    "mcp_sync_auth.errors": 0,
    "mcp_sync_auth._version": 0,
    "mcp_sync_auth._util": 1,
    "mcp_sync_auth._chain": 2,
    "mcp_sync_auth._stores": 3,
    "mcp_sync_auth._refresh": 4,
    "mcp_sync_auth._oauth": 5,
    "mcp_sync_auth._mcp": 5,
    "mcp_sync_auth._source": 6,
    "mcp_sync_auth.auth": 7,
    "mcp_sync_auth.client": 7,
    "mcp_sync_auth.testing": 8,
    "mcp_sync_auth.demo": 9,
    "mcp_sync_auth.cli": 10,
    "mcp_sync_auth.pytest_plugin": 10,
    "mcp_sync_auth": 11,  # the package's __init__: the public names, imported by nobody inside
}


def module_name(path, top):
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(top):
    return {module_name(path, top): path for path in sorted(top.rglob("*.py"))}


def imports_of(name, path, known):
    """The modules ``name`` imports (only those in ``known``), with ``from X import y`` read as X.y
    when y is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in known else source)
    return {target for target in found if target in known}


def layer_of(name):
    best = max((prefix for prefix in RANKS if name == prefix or name.startswith(prefix + ".")), key=len)
    return best, RANKS[best]


def graph(top):
    known = modules(top)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(edges):
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_every_module_has_a_layer():
    for name in modules(PACKAGE):
        assert layer_of(name), name


def test_imports_only_point_down():
    upward = []
    for source, targets in graph(PACKAGE).items():
        source_layer, source_rank = layer_of(source)
        for target in targets:
            target_layer, target_rank = layer_of(target)
            if target_layer == source_layer:
                continue
            if target_rank >= source_rank:
                upward.append(f"{source} -> {target}")
    assert upward == []


def test_the_mcp_client_and_the_refresh_core_know_nothing_of_each_other():
    edges = graph(PACKAGE)
    apart = ("mcp_sync_auth._mcp", "mcp_sync_auth._refresh")

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for target in edges[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    for name in edges:
        for mine, theirs in (apart, apart[::-1]):
            if name.startswith(mine):
                assert not any(t.startswith(theirs) for t in reach(name)), name


@pytest.mark.parametrize("top", ["mcp_sync_auth", "bench"])
def test_no_import_cycle(top):
    assert find_cycle(graph(ROOT / top)) is None


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    # The checks above can fail: a tiny package with both faults is caught.
    top = tmp_path / "mcp_sync_auth"
    (top / "_util").mkdir(parents=True)
    (top / "__init__.py").write_text("")
    (top / "_util" / "__init__.py").write_text("")
    (top / "_util" / "a.py").write_text("from . import b\nfrom ..auth import x\n")
    (top / "_util" / "b.py").write_text("from .a import y\n")
    (top / "auth.py").write_text("x = 1\n")
    edges = graph(top)
    assert find_cycle(edges) is not None
    assert "mcp_sync_auth.auth" in edges["mcp_sync_auth._util.a"]
    assert layer_of("mcp_sync_auth.auth")[1] > layer_of("mcp_sync_auth._util.a")[1]
