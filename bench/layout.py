"""How the library is laid out: folders, import floors and circles, the longest functions.

    python bench/layout.py [--root cifar_core] [--top 12]

Reads the source only (ast), imports nothing. "Floors": a module that imports nothing of the
package stands on floor 1, any other on one floor above the highest module it imports at its
top level (imports under `if TYPE_CHECKING:` are annotations only and not
counted). "Circles": groups of modules that reach each other through imports, counting
the imports made inside functions (which hide a circle from Python but not from a reader).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(tree: ast.AST, here: str, package: str, is_package: bool, modules):
    """(module, at_top_level) for each import of `package`'s modules in `tree`."""
    found = []
    top = set(id(node) for node in getattr(tree, "body", []))
    typing_only = set()
    for node in getattr(tree, "body", []):  # `if TYPE_CHECKING:` imports: annotations only
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".") if is_package else here.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from a import b` needs a.b where b is a module, else a itself
            names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem
                     for alias in node.names]
        for name in names:
            if name == package or name.startswith(package + "."):
                found.append((name, id(node) in top))
    return found


def collect(root: str):
    files = sorted((REPO / root).rglob("*.py"))
    modules = {module_name(f): f for f in files}
    edges: dict[str, dict[str, bool]] = {m: {} for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        for target, at_top in imported(tree, name, root.replace("/", "."), is_package, modules):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                edges[name][target] = edges[name].get(target, False) or at_top
    return modules, edges


def circles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def floors(edges):
    top = {m: [t for t, at_top in e.items() if at_top] for m, e in edges.items()}
    memo: dict[str, int] = {}

    def floor(m, seen=()):
        if m in memo:
            return memo[m]
        if m in seen:  # a top-level circle: count it once
            return 0
        memo[m] = 1 + max((floor(t, seen + (m,)) for t in top[m]), default=0)
        return memo[m]

    return {m: floor(m) for m in edges}


def functions(paths):
    out = []
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                out.append((length, f"{path.relative_to(REPO)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="cifar_core")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    modules, edges = collect(args.root)

    print(f"## Folders of {args.root}/")
    by_folder: dict[str, list[str]] = {}
    for path in modules.values():
        folder = str(path.parent.relative_to(REPO))
        by_folder.setdefault(folder, []).append(path.stem)
    for folder in sorted(by_folder):
        print(f"{folder}/ ({len(by_folder[folder])}): {' '.join(sorted(by_folder[folder]))}")

    level = floors(edges)
    print(f"\n## Import floors: {max(level.values())} "
          f"(modules: {len(modules)}, imports between them: "
          f"{sum(len(e) for e in edges.values())}, of them inside functions: "
          f"{sum(1 for e in edges.values() for at_top in e.values() if not at_top)})")
    for n in range(1, max(level.values()) + 1):
        names = sorted(m.removeprefix(args.root + ".") for m, f in level.items() if f == n)
        print(f"{n:2d}: {' '.join(names)}")

    print("\n## What each folder imports (modules in functions counted too)")
    def group(module):
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "(package)"
    between: dict[str, set[str]] = {}
    for source, targets in edges.items():
        for target in targets:
            if group(source) != group(target):
                between.setdefault(group(source), set()).add(group(target))
    for name in sorted(between):
        print(f"{name}: {' '.join(sorted(between[name]))}")

    groups = circles(edges)
    print(f"\n## Import circles: {len(groups)}")
    for group in groups:
        print("  " + " <-> ".join(m.removeprefix(args.root + ".") for m in group))

    others = [REPO / "app.py", *sorted((REPO / "pages").rglob("*.py"))]
    print(f"\n## Longest functions ({args.root}/)")
    for length, where in functions(modules.values())[: args.top]:
        print(f"{length:5d}  {where}")
    print("\n## Longest functions (app.py, pages/)")
    for length, where in functions(others)[: args.top]:
        print(f"{length:5d}  {where}")
    print(f"\n## Largest modules ({args.root}/, app.py, pages/)")
    sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(REPO)))
                    for p in [*modules.values(), *others]), reverse=True)
    for lines, where in sizes[: args.top]:
        print(f"{lines:5d}  {where}")


if __name__ == "__main__":
    main()
