"""The package's import graph has no cycles, at module level nor counting lazy and TYPE_CHECKING imports."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vtcodec"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, everywhere: bool = False) -> set[str]:
    """vtcodec modules imported at module level, outside ``if TYPE_CHECKING:`` (``everywhere``: also
    under TYPE_CHECKING and inside functions)."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if everywhere else tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vtcodec"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vtcodec"))
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*trail, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*trail, node])):
                return cycle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [])):
            return cycle
    return None


def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {m for m in top_level_imports(path) if m in modules and m != name and m != "vtcodec"}
        for name, path in modules.items()
    }
    assert find_cycle(graph) is None
    assert "vtcodec.entropy" not in graph["vtcodec.container"]  # parsing a header loads no coder
    assert graph["vtcodec.container"] <= {
        "vtcodec.errors",
        "vtcodec.errors.FormatError",
        "vtcodec.tile_grid",
        "vtcodec.tile_grid.TileGrid",
    }  # nor torch, through tiling


def test_help_info_cut_and_import_load_no_torch(tmp_path):
    """`import vtcodec`, `vtcodec --help`, `vtcodec info` and `vtcodec truncate --cut` start without torch
    (start-up time; a server cuts files without the model)."""
    import subprocess
    import sys

    sample = PACKAGE.parent / "samples" / "parrots-t16.vtk"
    layered = PACKAGE.parent / "samples" / "parrots-t64-layered.vtk"
    cut = ["'vtcodec', 'truncate', sys.argv[2], '--cut', '--bytes', '200', '-o', sys.argv[3]"]
    script = (
        "import sys\n"
        "import vtcodec\n"
        "from vtcodec.cli import main\n"
        "for argv in (['vtcodec', '--help'], ['vtcodec', 'info', sys.argv[1]], ['vtcodec', 'encode', '--help'],\n"
        f"             [{cut[0]}]):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, argv\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "vtcodec.compress  # the API is still there, on first use\n"
        "assert 'torch' in sys.modules\n"
    )
    args = [sys.executable, "-c", script, str(sample), str(layered), str(tmp_path / "cut.vtk")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "decoders: attention (default)" in done.stdout
    assert 0 < (tmp_path / "cut.vtk").stat().st_size <= 200


def test_no_import_cycles_counting_lazy_and_type_checking_imports():
    """Lazy imports buy start-up time, never a way around a cycle (the package root's lazy API aside)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {m for m in top_level_imports(path, everywhere=True) if m in modules and m != name and m != "vtcodec"}
        for name, path in modules.items()
        if name != "vtcodec"
    }
    assert find_cycle(graph) is None
