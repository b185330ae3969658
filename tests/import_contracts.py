"""Import-linter contract types the rules of the house need: forbidden at module level,
and imports only.

`api` may import the engine or plotting inside a function (loaded on first use,
not as the API starts), never at module level, directly or through a module it
imports at module level. import-linter's `forbidden` contract sees every import;
this one first drops from the graph the imports made only inside a function, then
checks as `forbidden` does.

A route module may import, of `api`, only the dependencies, the schemas, the
problem, response and link helpers and the services, never another route: import-linter
can forbid a list, not allow one, so `imports_only` names what is allowed and
breaks on any other direct import inside a package. Both are registered in
pyproject.toml (`contract_types`).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from grimp import ImportGraph
from importlinter import Contract, fields, output
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.domain.contract import ContractCheck
from importlinter.domain.helpers import module_expressions_to_modules


def function_level_lines(module: str) -> set[int]:
    """The lines of `module`'s source that import inside a function (never at import time)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return set()
    tree = ast.parse(Path(spec.origin).read_text())
    return {
        inner.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    }


class ModuleLevelForbiddenContract(ForbiddenContract):
    """A `forbidden` contract that allows the forbidden imports made inside functions."""

    type_name = "forbidden_at_module_level"

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        for importer in sorted(graph.modules):
            imported_modules = graph.find_modules_directly_imported_by(importer)
            inside_functions = function_level_lines(importer) if imported_modules else set()
            for imported in imported_modules if inside_functions else ():
                details = graph.get_import_details(importer=importer, imported=imported)
                if details and all(d["line_number"] in inside_functions for d in details):
                    graph.remove_import(importer=importer, imported=imported)
        return super().check(graph, verbose)


class ImportsOnlyContract(Contract):
    """Of the package `inside`, `source_modules` import directly only `allowed_modules`
    (and the modules inside those)."""

    type_name = "imports_only"

    source_modules = fields.ListField(subfield=fields.ModuleExpressionField())
    inside = fields.StringField()
    allowed_modules = fields.ListField(subfield=fields.ModuleExpressionField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        sources = module_expressions_to_modules(graph, self.source_modules)  # type: ignore[arg-type]
        allowed = {
            module.name
            for module in module_expressions_to_modules(
                graph,
                self.allowed_modules,  # type: ignore[arg-type]
                as_packages=True,
            )
        }
        inside = str(self.inside)
        illegal = [
            (source.name, imported)
            for source in sorted(sources, key=lambda module: module.name)
            for imported in sorted(graph.find_modules_directly_imported_by(source.name))
            if (imported == inside or imported.startswith(f"{inside}.")) and imported not in allowed
        ]
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for source, imported in check.metadata["illegal"]:
            output.print_error(f"{source} is not allowed to import {imported}")
            output.new_line()
