"""Every test checks something: a test that only calls code passes whatever the code does.

An AST scan of the test tree lists test functions that contain no check:
no ``assert`` (type-narrowing ``assert isinstance(...)`` / ``assert x is not
None`` do not count), no ``pytest.raises``/``fail``/``warns``, no ``raise``
of an AssertionError (or a subclass such as simnet's SimulationStuck), and
no call to a helper that checks. A helper counts when it checks itself (or
through another helper) and either lives in a test module or conftest, or
says so in its name (``assert_*``, ``check*``, ``expect*``, ``verify*``,
``*_ok``). Calls resolve by name to the test's own module, the test-tree
modules it imports, and the conftests above it.

A second scan lists certificate-path validations whose returned path is
thrown away outside ``pytest.raises``: the path is the result, so a
passing validation asserts it.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CHECKY = re.compile(r"(^|_)(assert|check|expect|verify|ensure|must)|(^|_)ok$")
Function = ast.FunctionDef | ast.AsyncFunctionDef


def _callee(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def _narrowing(test: ast.expr) -> bool:
    """``assert isinstance(x, T)`` / ``assert x is not None``: for the type checker only."""
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Name):
        return test.func.id == "isinstance"
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.IsNot)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


class _Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = sorted(root.rglob("*.py"))
        self.trees = {f: ast.parse(f.read_text(), str(f)) for f in self.files}
        self.assertion_classes = self._assertion_classes()
        self.helpers: dict[Path, dict[str, list[Function]]] = {f: {} for f in self.files}
        for f, tree in self.trees.items():
            for node in ast.walk(tree):
                if isinstance(node, Function) and not node.name.startswith("test"):
                    self.helpers[f].setdefault(node.name, []).append(node)
        self.scopes = {f: self._scope(f) for f in self.files}
        self.checking = self._checking_helpers()

    def _assertion_classes(self) -> set[str]:
        names = {"AssertionError"}
        for _ in range(5):
            for tree in self.trees.values():
                for node in ast.walk(tree):
                    if isinstance(node, ast.ClassDef) and any(
                        isinstance(b, ast.Name) and b.id in names for b in node.bases
                    ):
                        names.add(node.name)
        return names

    def _scope(self, f: Path) -> set[Path]:
        by_stem: dict[str, list[Path]] = {}
        for g in self.files:
            by_stem.setdefault(g.stem, []).append(g)
        scope = {f}
        for node in ast.walk(self.trees[f]):
            if isinstance(node, ast.ImportFrom) and node.module:
                scope.update(by_stem.get(node.module.rsplit(".", 1)[-1], []))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    scope.update(by_stem.get(alias.name.rsplit(".", 1)[-1], []))
        for directory in (f.parent, *f.parent.parents):
            if directory != self.root and self.root not in directory.parents:
                break
            if (conftest := directory / "conftest.py") in self.trees:
                scope.add(conftest)
        return scope

    def checks_directly(self, fn: Function) -> bool:
        for node in ast.walk(fn):
            if isinstance(node, ast.Assert) and not _narrowing(node.test):
                return True
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else getattr(exc, "attr", None)
                if name in self.assertion_classes:
                    return True
            if isinstance(node, ast.Call) and _callee(node) in ("raises", "fail", "warns"):
                return True
        return False

    def _counts(self, f: Path, name: str) -> bool:
        return bool(CHECKY.search(name)) or f.name.startswith("test_") or f.name == "conftest.py"

    def calls_a_checker(self, f: Path, fn: Function, checking: set[tuple[Path, str]]) -> bool:
        names = _called_names(fn)
        return any((g, name) in checking for g in self.scopes[f] for name in names)

    def _checking_helpers(self) -> set[tuple[Path, str]]:
        checking = {
            (f, name)
            for f in self.files
            for name, fns in self.helpers[f].items()
            if self._counts(f, name) and any(self.checks_directly(fn) for fn in fns)
        }
        while True:
            more = {
                (f, name)
                for f in self.files
                for name, fns in self.helpers[f].items()
                if (f, name) not in checking
                and self._counts(f, name)
                and any(self.calls_a_checker(f, fn, checking) for fn in fns)
            }
            if not more:
                return checking
            checking |= more

    def tests(self) -> Iterator[tuple[Path, Function]]:
        """What pytest collects: test* functions of a module and of its Test* classes."""
        for f, tree in self.trees.items():
            if not f.name.startswith("test_"):
                continue
            for node in tree.body:
                if isinstance(node, Function) and node.name.startswith("test"):
                    yield f, node
                elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                    for item in node.body:
                        if isinstance(item, Function) and item.name.startswith("test"):
                            yield f, item

    def unchecked_tests(self) -> list[str]:
        return sorted(
            f"{f.relative_to(self.root.parent)}::{fn.name}"
            for f, fn in self.tests()
            if not (self.checks_directly(fn) or self.calls_a_checker(f, fn, self.checking))
        )

    def discarded_paths(self) -> list[str]:
        """``verify_chain(...)`` (or test_verify's ``verify(...)``) as a bare statement."""
        found = []
        for f, fn in self.tests():
            found += [
                f"{f.relative_to(self.root.parent)}:{line}::{fn.name}"
                for line in _bare_validations(fn)
            ]
        return sorted(found)


@functools.cache
def _called_names(fn: Function) -> frozenset[str]:
    return frozenset(n for c in ast.walk(fn) if isinstance(c, ast.Call) and (n := _callee(c)))


@functools.cache
def _scan(root: Path) -> _Tree:
    return _Tree(root)


def _bare_validations(fn: Function) -> Iterator[int]:
    def walk(node: ast.AST, in_raises: bool) -> Iterator[int]:
        if isinstance(node, ast.With) and any(
            isinstance(i.context_expr, ast.Call) and _callee(i.context_expr) == "raises"
            for i in node.items
        ):
            in_raises = True
        if (
            not in_raises
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id in ("verify_chain", "verify")
        ):
            yield node.lineno
        for child in ast.iter_child_nodes(node):
            yield from walk(child, in_raises)

    yield from walk(fn, False)


def test_every_test_checks_something() -> None:
    assert _scan(TESTS).unchecked_tests() == []


def test_validated_paths_are_checked() -> None:
    assert _scan(TESTS).discarded_paths() == []


def test_the_scan_tells_a_check_from_a_call(tmp_path: Path) -> None:
    """The scanner itself: what counts as a check and what does not."""
    (tmp_path / "helpers.py").write_text(
        "def assert_fine(x):\n    assert x\n"
        "def setup_thing():\n    thing = object()\n    assert thing is not None\n    return thing\n"
    )
    (tmp_path / "test_sample.py").write_text(
        "import pytest\nfrom helpers import assert_fine, setup_thing\n"
        "def _local_check(x):\n    assert x == 1\n"
        "def test_asserts():\n    assert 1\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
        "def test_named_helper():\n    assert_fine(1)\n"
        "def test_local_helper():\n    _local_check(1)\n"
        "def test_only_calls():\n    setup_thing()\n"
        "def test_only_narrows():\n    x = setup_thing()\n    assert isinstance(x, object)\n"
        "def test_discards_a_path():\n    verify_chain([], [])\n"
    )
    tree = _Tree(tmp_path)
    name = tmp_path.name
    assert tree.unchecked_tests() == [
        f"{name}/test_sample.py::test_discards_a_path",
        f"{name}/test_sample.py::test_only_calls",
        f"{name}/test_sample.py::test_only_narrows",
    ]
    assert tree.discarded_paths() == [f"{name}/test_sample.py:20::test_discards_a_path"]
