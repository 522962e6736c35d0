"""Every public function, method and class of ``quicnet`` has a docstring.

An AST scan of every module of ``quicnet/`` lists each definition whose name
does not start with ``_`` and that has no docstring: module-level functions
and classes, and the methods, properties and nested classes of public
classes (definitions under a module-level ``if`` or ``try`` count too).
Exempt: private names and dunders, everything inside a private class,
functions nested in functions (not reachable by a user), property setters
and deleters (the getter's docstring documents the property) and
``@overload`` stubs (the implementation's docstring documents them).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "quicnet"

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _exempt(node: Definition) -> bool:
    if node.name.startswith("_"):
        return True
    for decorator in node.decorator_list:
        name = ast.unparse(decorator)
        if name.endswith((".setter", ".deleter")) or name in ("overload", "typing.overload"):
            return True
    return False


def _scan(body: list[ast.stmt], prefix: str, found: list[str]) -> None:
    for node in body:
        if isinstance(node, ast.If):
            _scan(node.body + node.orelse, prefix, found)
        elif isinstance(node, ast.Try):
            handlers = [stmt for handler in node.handlers for stmt in handler.body]
            _scan(node.body + handlers + node.orelse + node.finalbody, prefix, found)
        elif isinstance(node, Definition) and not _exempt(node):
            if ast.get_docstring(node) is None:
                found.append(f"{node.lineno}: {prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                _scan(node.body, f"{prefix}{node.name}.", found)


def undocumented(source: str, filename: str = "<source>") -> list[str]:
    """``line: name`` for each public definition in ``source`` without a docstring."""
    found: list[str] = []
    _scan(ast.parse(source, filename).body, "", found)
    return found


def test_the_scan_finds_undocumented_public_definitions() -> None:
    source = (
        "import typing\n"
        "def bare(): pass\n"
        "def documented():\n"
        '    """Doc."""\n'
        "    def nested(): pass\n"
        "def _private(): pass\n"
        "class Public:\n"
        "    def method(self): pass\n"
        "    @property\n"
        "    def value(self):\n"
        '        """Doc."""\n'
        "    @value.setter\n"
        "    def value(self, v): pass\n"
        "    def __eq__(self, other): pass\n"
        "    class Inner: pass\n"
        "class _Hidden:\n"
        "    def method(self): pass\n"
        "if typing.TYPE_CHECKING:\n"
        "    def typed(): pass\n"
        "@typing.overload\n"
        "def over(x: int) -> int: ...\n"
        "def over(x):\n"
        '    """Doc."""\n'
    )
    assert undocumented(source) == [
        "2: bare",
        "7: Public",
        "8: Public.method",
        "15: Public.Inner",
        "19: typed",
    ]


def test_every_public_definition_has_a_docstring() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{hit}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for hit in undocumented(path.read_text(encoding="utf-8"), str(path))
    ]
    assert found == [], "public definitions without a docstring:\n" + "\n".join(found)
