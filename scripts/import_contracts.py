"""An import-linter contract type for the feature areas of webapp/ (`make lint`, pyproject.toml).

    [[tool.importlinter.contracts]]
    name = "..."
    type = "areas"
    container = "webapp"
    public_modules = ["queries", "services", "filters"]
    shared_modules = ["webapp.auth.scope"]
    ignore_imports = ["webapp.x.y -> webapp.z.w"]

Every subpackage of `container` is an area (so a new one is covered the day it is created). A
module of one area may import another area only through that area's public modules (and their
submodules): not its package (blueprint), routes, CLI or helpers. `shared_modules` are open to
every area (the permission gate). Modules of the container itself (`webapp/__init__.py`,
`webapp/cli.py`, ...) assemble the areas and may import anything; areas may import them.
"""

from __future__ import annotations

from dataclasses import dataclass

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils


@dataclass(frozen=True)
class Crossing:
    importer: str
    imported: str
    line_numbers: tuple[int, ...]


class AreasContract(Contract):
    """Feature areas reach each other only through their public modules."""

    type_name = "areas"

    container = fields.StringField()
    public_modules = fields.ListField(subfield=fields.StringField())
    shared_modules = fields.ListField(subfield=fields.StringField(), required=False)
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(
        contract_utils.AlertLevel, default=contract_utils.AlertLevel.ERROR
    )

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[arg-type]
        )
        container = str(self.container)
        public = set(self.public_modules)  # type: ignore[arg-type]
        shared = list(self.shared_modules or [])  # type: ignore[arg-type]
        areas = {m for m in graph.find_children(container) if graph.find_children(m)}

        def area_of(module: str) -> str | None:
            parts = module.split(".")
            head = ".".join(parts[:2])
            return head if module.startswith(container + ".") and head in areas else None

        def allowed(imported: str, area: str) -> bool:
            if any(imported == s or imported.startswith(s + ".") for s in shared):
                return True
            rest = imported[len(area) + 1 :].split(".")
            return imported != area and rest[0] in public

        crossings = []
        for importer in sorted(graph.modules):
            source = area_of(importer)
            if source is None:
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                target = area_of(imported)
                if target is None or target == source or allowed(imported, target):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = tuple(d["line_number"] for d in details)
                crossings.append(Crossing(importer, imported, lines))
        return ContractCheck(
            kept=not crossings,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"crossings": crossings},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        public = ", ".join(self.public_modules)  # type: ignore[arg-type]
        output.print_error(
            f"Imports of another area's private modules (only {public} are public):", bold=False
        )
        output.new_line()
        for crossing in check.metadata["crossings"]:
            lines = ", ".join(map(str, crossing.line_numbers))
            output.print_error(f"- {crossing.importer} -> {crossing.imported} (l.{lines})", False)
        output.new_line()
