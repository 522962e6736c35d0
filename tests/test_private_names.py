"""No module reaches into another's private names (a project rule, docs/design.md).

An AST scan of ``quicnet/`` lists every ``x._name`` where ``_name`` is not
one of the module's own private names (a method, a ``self._name`` attribute,
a ``__slots__`` entry or a class attribute of a class the module defines), so
``other._der`` inside ``Certificate.__eq__`` passes while ``cert._cert`` in
another module, or pyca's ``oid._name``, does not. It also lists imports of
private modules or names (``cryptography.hazmat.bindings._rust``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "quicnet"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_private_names(tree: ast.Module) -> set[str]:
    """Private names the module's classes define."""
    names: set[str] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if not isinstance(target, ast.Name):
                        continue
                    names.add(target.id)
                    if target.id == "__slots__" and isinstance(node.value, ast.Tuple | ast.List):
                        names |= {
                            e.value
                            for e in node.value.elts
                            if isinstance(e, ast.Constant) and isinstance(e.value, str)
                        }
    return {n for n in names if _private(n)}


def reach_ins(source: str, filename: str = "<source>") -> list[str]:
    """``line: what`` for each private name ``source`` takes from elsewhere."""
    tree = ast.parse(source, filename)
    own = _own_private_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr not in own:
                found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {a.name}"
                for a in node.names
                if any(_private(p) for p in a.name.split("."))
            ]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if any(_private(p) for p in node.module.split(".")):
                found.append(f"{node.lineno}: from {node.module}")
            found += [
                f"{node.lineno}: from {node.module} import {a.name}"
                for a in node.names
                if _private(a.name)
            ]
    return found


def test_the_scan_finds_reach_ins_and_passes_own_names() -> None:
    source = (
        "from cryptography.hazmat.bindings._rust import openssl\n"
        "from quicnet.crypto.certs import _wrap\n"
        "class Mine:\n"
        "    __slots__ = ('_der',)\n"
        "    def __eq__(self, other):\n"
        "        return self._der == other._der\n"
        "def name(cert, oid):\n"
        "    return cert._cert, oid._name, Mine()._der\n"
    )
    assert reach_ins(source) == [
        "1: from cryptography.hazmat.bindings._rust",
        "2: from quicnet.crypto.certs import _wrap",
        "8: ._cert",
        "8: ._name",
    ]


def test_no_module_reaches_into_private_names() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{hit}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for hit in reach_ins(path.read_text(encoding="utf-8"), str(path))
    ]
    assert found == []
