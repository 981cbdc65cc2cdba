"""Every SQL statement the package sends is a constant with ``$n`` parameters: no value is ever spliced in.

The test reads the package's source (``ast``) and finds every call of an asyncpg method that takes SQL
(``execute``, ``executemany``, ``fetch``, ``fetchrow``, ``fetchval``, ``cursor``, ``prepare``, ``copy_from_query``).
Its SQL argument must be built from constants only: string literals; f-strings, ``+``, ``%`` and ``.format`` /
``.join`` over constants; names assigned only such values (in the function, the module, or imported from another
module of the package); a subscript of a module-level table of constants. Anything else — a parameter, an
attribute, a call — is a finding, unless the site is in ``ALLOWED`` with the reason it is safe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import triplegain

PACKAGE = Path(triplegain.__file__).resolve().parent
SQL_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare", "copy_from_query"}

# Calls of these names that are not asyncpg's: (module, receiver) → what it is.
NOT_DATABASE = {("agents/sources/pool.py", "source"): "a news source's fetch(since, now)"}

# (module, the non-constant expression as written) → why it is not user input.
ALLOWED = {
    # The review queries' WHERE builder: fragments are string literals at every call site (checked below) and each
    # value becomes a $n parameter; .sql() joins the fragments, .param() returns "$n".
    ("review/decision_queries.py", "where.sql()"): "Where: constant fragments, values as $n",
    ("review/decision_queries.py", "where.param(decisions.limit)"): "Where.param returns a placeholder",
    ("review/decision_queries.py", "where.param(decisions.offset)"): "Where.param returns a placeholder",
    ("review/decision_queries.py", "where.param(size)"): "Where.param returns a placeholder",
    ("review/call_queries.py", "where.sql()"): "Where: constant fragments, values as $n",
    ("review/call_queries.py", "where.param(calls.limit)"): "Where.param returns a placeholder",
    ("review/call_queries.py", "where.param(calls.offset)"): "Where.param returns a placeholder",
    ("review/call_queries.py", "where.param(size)"): "Where.param returns a placeholder",
    ("review/report_queries.py", "where.sql()"): "Where: constant fragments, values as $n",
    ("review/report_queries.py", "fill_where.sql()"): "Where: constant fragments, values as $n",
    ("review/report_queries.py", "order_where.sql()"): "Where: constant fragments, values as $n",
    ("review/results_queries.py", "where.sql()"): "Where: constant fragments, values as $n",
    ("review/results_queries.py", "breaker_where.sql()"): "Where: constant fragments, values as $n",
    ("review/results_queries.py", "command_where.sql()"): "Where: constant fragments, values as $n",
    ("review/results_queries.py", "level_where.sql()"): "Where: constant fragments, values as $n",
    # Bulk inserts: a Table declared in code (store/*.py) names the table, its columns and key; rows go by COPY.
    ("store/records.py", "table.create_staging_statement"): "identifiers from a Table declared in code",
    ("store/records.py", "table.move_statement"): "identifiers from a Table declared in code",
    # Migration files shipped in the package's migrations/ folder, run as the schema they are.
    ("store/migrations.py", "migration.sql"): "a migration file of the package",
    # The embedded server's database: EMBEDDED_DATABASE, a constant, quoted; CREATE DATABASE takes no parameters.
    ("store/database.py", "name"): "_create_database_if_missing(…, EMBEDDED_DATABASE, …)",
}


@dataclass(frozen=True)
class Finding:
    module: str
    line: int
    expression: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: SQL built from {self.expression!r}"


class Module:
    """One source file: its tree, and where each module-level name and imported name comes from."""

    def __init__(self, path: Path) -> None:
        self.name = path.relative_to(PACKAGE).as_posix()
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.assignments: dict[str, list[ast.expr]] = {}
        self.imports: dict[str, tuple[str, str]] = {}
        for node in self.tree.body:
            for target, value in _assigned(node):
                self.assignments.setdefault(target, []).append(value)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("triplegain."):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)


def _assigned(node: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(node, ast.Assign) and node.value is not None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                yield target.id, node.value
    elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name) and node.value:
        yield node.target.id, node.value


MODULES = {module.name: module for module in (Module(path) for path in sorted(PACKAGE.rglob("*.py")))}


def _module_of(dotted: str) -> Module | None:
    relative = dotted.removeprefix("triplegain.").replace(".", "/")
    return MODULES.get(f"{relative}.py") or MODULES.get(f"{relative}/__init__.py")


class Checker:
    """Decides whether an expression is built from constants, collecting the parts that are not."""

    def __init__(self, module: Module, function: ast.AST | None) -> None:
        self.module = module
        self.local: dict[str, list[ast.expr]] = {}
        self.parameters: set[str] = set()
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            self.parameters = {arg.arg for arg in [*function.args.args, *function.args.kwonlyargs]}
            for node in ast.walk(function):
                for target, value in _assigned(node):
                    self.local.setdefault(target, []).append(value)
        self.unsafe: list[ast.expr] = []
        self._seen: set[int] = set()

    def constant(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str | int | float)
        if isinstance(node, ast.JoinedStr):
            return all([self.constant(part) for part in node.values])
        if isinstance(node, ast.FormattedValue):
            return self.part(node.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
            return self.part(node.left) & self.part(node.right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join"):
            return self.part(node.func.value) & all([self.part(arg) for arg in node.args])
        if isinstance(node, ast.Tuple | ast.List):
            return all([self.part(element) for element in node.elts])
        if isinstance(node, ast.Subscript):
            return self._table_of_constants(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        return False

    def part(self, node: ast.expr) -> bool:
        """``constant(node)``, recording ``node`` as unsafe when it is a leaf (not built of further parts)."""
        composite = isinstance(node, ast.JoinedStr | ast.BinOp | ast.Tuple | ast.List) or (
            isinstance(node, ast.Name) and self._resolvable(node.id)
        )
        if self.constant(node):
            return True
        if not composite:
            self.unsafe.append(node)
        return False

    def _resolvable(self, name: str) -> bool:
        return name in self.local or name in self.module.assignments or name in self.module.imports

    def _name(self, name: str) -> bool:
        if name in self.parameters and name not in self.local:
            return False
        values = self.local.get(name) or self.module.assignments.get(name)
        if values is None and name in self.module.imports:
            origin, original = self.module.imports[name]
            source = _module_of(origin)
            if source is not None:
                return Checker(source, None)._name(original)
        if not values:
            return False
        key = id(values)
        if key in self._seen:
            return True
        self._seen.add(key)
        return all([self.constant(value) or self._leaf(value) for value in values])

    def _leaf(self, node: ast.expr) -> bool:
        """Record ``node`` as unsafe unless it is composite (its own unsafe parts are recorded already)."""
        if not isinstance(node, ast.JoinedStr | ast.BinOp | ast.Tuple | ast.List | ast.Name):
            self.unsafe.append(node)
        return False

    def _table_of_constants(self, node: ast.expr) -> bool:
        """A module-level dict or tuple literal of constants (``_LOCK_STATE[mode]``)."""
        if not isinstance(node, ast.Name):
            return False
        values = self.module.assignments.get(node.id, [])
        if len(values) != 1 or not isinstance(values[0], ast.Dict | ast.Tuple):
            return False
        table = values[0]
        elements = table.values if isinstance(table, ast.Dict) else table.elts
        return all(element is not None and self.constant(element) for element in elements)


def sql_calls(module: Module) -> Iterator[tuple[ast.Call, ast.AST | None]]:
    def visit(node: ast.AST, function: ast.AST | None) -> Iterator[tuple[ast.Call, ast.AST | None]]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in SQL_METHODS
                and (child.args or any(keyword.arg == "query" for keyword in child.keywords))
            ):
                yield child, function
            yield from visit(child, inner)

    yield from visit(module.tree, None)


def findings() -> Iterator[tuple[Finding, str | None]]:
    """Each non-constant part of a SQL argument, with the reason it is allowed (None: not allowed)."""
    for module in MODULES.values():
        for call, function in sql_calls(module):
            assert isinstance(call.func, ast.Attribute)
            if (module.name, ast.unparse(call.func.value)) in NOT_DATABASE:
                continue
            sql = call.args[0] if call.args else next(k.value for k in call.keywords if k.arg == "query")
            checker = Checker(module, function)
            if checker.constant(sql):
                continue
            for part in checker.unsafe or [sql]:
                finding = Finding(module.name, call.lineno, ast.unparse(part))
                yield finding, ALLOWED.get((module.name, finding.expression))


def test_every_sql_statement_is_a_constant_with_parameters() -> None:
    problems = [str(finding) for finding, allowed in findings() if allowed is None]
    assert not problems, "\n".join(problems)


def test_the_checker_finds_a_spliced_value() -> None:
    source = """
async def bad(pool, symbol):
    query = "SELECT * FROM orders WHERE symbol = '" + symbol + "'"
    await pool.fetch(query)
    await pool.execute(f"DELETE FROM fills WHERE id = {symbol}")
    await pool.fetchval("SELECT %s" % symbol)
    await pool.fetchrow("SELECT {}".format(symbol))
    await pool.execute("SELECT 1 WHERE x = $1", symbol)
"""
    module = Module.__new__(Module)
    module.name, module.tree, module.assignments, module.imports = "example.py", ast.parse(source), {}, {}
    found = []
    for call, function in sql_calls(module):
        checker = Checker(module, function)
        if not checker.constant(call.args[0]):
            found.append([ast.unparse(part) for part in checker.unsafe])
    assert found == [["symbol"], ["symbol"], ["symbol"], ["symbol"]]


def test_every_allowed_site_still_exists() -> None:
    seen = {(finding.module, finding.expression) for finding, allowed in findings() if allowed is not None}
    assert set(ALLOWED) <= seen, set(ALLOWED) - seen


def test_the_where_builder_is_only_given_literal_fragments() -> None:
    """``Where.add(fragment, *values)``: the fragment is SQL, so it must be a constant like any statement.

    A fragment that is a parameter of its function (``_run_where(scope, run_fragment)``) must be a constant at
    every call of that function. Every module that imports ``Where`` is checked, and must add a fragment.
    """
    builders = {name for name, module in MODULES.items() if "Where" in module.imports}
    assert builders, "no module builds a WHERE clause, so this test checks nothing"
    checked = {name for name, module in MODULES.items() if _where_fragments_checked(module)}
    assert builders <= checked, builders - checked


def _where_fragments_checked(module: Module) -> int:
    """Check every ``….add(fragment, …)`` on a ``*where`` name in ``module``; how many there are."""
    functions = {
        node.name: node for node in ast.walk(module.tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    calls = [node for node in ast.walk(module.tree) if isinstance(node, ast.Call)]
    sites = 0
    for function in functions.values():
        for node in ast.walk(function):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id.endswith("where")
            ):
                continue
            sites += 1
            checker = Checker(module, function)
            if checker.part(node.args[0]):
                continue
            names = {part.id for part in checker.unsafe if isinstance(part, ast.Name)}
            assert names, ast.unparse(node.args[0])
            assert all(name in checker.parameters for name in names), ast.unparse(node.args[0])
            for name in names:
                index = [arg.arg for arg in function.args.args].index(name)
                for call in calls:
                    if isinstance(call.func, ast.Name) and call.func.id == function.name:
                        given = call.args[index] if index < len(call.args) else None
                        given = given or next(k.value for k in call.keywords if k.arg == name)
                        where = f"{module.name}:{call.lineno}: {function.name}(…, {ast.unparse(given)})"
                        assert Checker(module, None).constant(given), where
    return sites
