"""The package layout draws the pipeline (docs/architecture.md): every
module of conformance/ is parsed, and what it imports must be what its
package may import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "conformance"

# The front ends, and the package's face: the only modules at the top level.
TOP_LEVEL = {"__init__", "__main__", "cli", "pytest_plugin", "host"}

# What each package may import besides itself. The front ends (TOP_LEVEL)
# may import anything; every module may import the package's face,
# `conformance` itself (__version__).
MAY_IMPORT = {
    "core": set(),
    "gate": {"core"},
    "appliances": {"core"},
    "backends": {"core", "appliances"},
    "run": {"core", "backends", "gate"},
    "reports": {"core", "gate"},
}

# Imports made inside a function (at call time) that break the rules above,
# each with its reason. Nothing else may; and each must still be needed.
EXCEPTIONS = {
    # A profile names backends and gives their settings; only the backend
    # registry knows which settings each backend has.
    ("core.profile", "backends"),
    # A run record read back is gated again with the expectations it holds.
    ("core.runrecord", "gate.expect"),
}


def _modules() -> dict[str, Path]:
    """Dotted name below `conformance` (core.profile, cli, ...) -> file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module below `conformance`, or "" for the package itself;
    whether the import is inside a function) for each conformance import."""
    package = name.split(".")[:-1]  # "backends.__init__" is in backends, as "backends.qemu" is
    tree = ast.parse(path.read_text(), str(path))
    lazy_nodes = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
    }
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                if node.level - 1 > len(package):
                    raise AssertionError(f"{path}: import beyond the package")
                module = ".".join(["conformance", *base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from pkg import module` imports the module: name it.
            targets = [f"{module}.{a.name}" if _is_module(f"{module}.{a.name}") else module for a in node.names]
        for target in targets:
            if target == "conformance" or target.startswith("conformance."):
                out.append((target.removeprefix("conformance").lstrip("."), id(node) in lazy_nodes))
    return out


def _is_module(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] != "conformance":
        return False
    path = PACKAGE.joinpath(*parts[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _package(name: str) -> str | None:
    """The package of a module below `conformance`; None at the top level."""
    return name.split(".")[0] if "." in name else None


def test_top_level_holds_only_the_front_ends():
    top = {path.stem for path in PACKAGE.glob("*.py")}
    assert top == TOP_LEVEL
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(MAY_IMPORT)


def test_each_package_imports_only_what_it_may():
    broken, used = [], set()
    for name, path in _modules().items():
        package = _package(name)
        if package is None:
            continue  # a front end
        for target, lazy in _imports(name, path):
            theirs = _package(target) or target
            if target in ("", "__init__") or theirs == package or theirs in MAY_IMPORT[package]:
                continue
            owner = name.removesuffix(".__init__")
            allowed = next((e for e in EXCEPTIONS if e[0] == owner and (target + ".").startswith(e[1] + ".")), None)
            if lazy and allowed is not None:
                used.add(allowed)
                continue
            broken.append(f"{owner} imports conformance.{target}" + (" (inside a function)" if lazy else ""))
    assert broken == []
    assert used == EXCEPTIONS, f"exceptions no longer needed: {EXCEPTIONS - used}"


def test_the_product_does_not_import_the_tests():
    test_side = {"support", "tests", "fakes", "conftest", "records"}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert (node.module or "").split(".")[0] not in test_side, f"{name} imports {node.module}"
            elif isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & test_side, name


def test_the_xen_appliance_and_the_test_sshd_layer_do_not_import_each_other():
    appliance = (PACKAGE / "appliances" / "xen.py").read_text()
    layer = (ROOT / "tests" / "support" / "xen_sshd.py").read_text()
    imported = {
        node.module or ""
        for text in (appliance,)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ImportFrom)
    }
    assert not any("xen_sshd" in module or module.startswith("support") for module in imported)
    for node in ast.walk(ast.parse(layer)):
        if isinstance(node, ast.ImportFrom):
            assert node.module != "conformance.appliances.xen" and not (node.level and node.module == "xen"), (
                node.module
            )
            assert not any(a.name == "xen" for a in node.names if node.module == "conformance.appliances")
