"""The rules of the house as import contracts (pyproject.toml, [tool.importlinter]): each
heavy dependency lives in one package, `core` knows neither `api` nor `worker`, the domain
knows no infrastructure, and the API loads neither the engine nor plotting as it starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run lint-imports (no cache left behind); its exit status and output."""
    done = subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def test_every_import_contract_of_the_house_is_kept() -> None:
    status, output = lint_imports(cwd=ROOT)
    assert status == 0, output
    assert "0 broken" in output


def test_a_module_level_import_breaks_the_module_level_contract_a_function_level_one_not(
    tmp_path: Path,
) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "heavy.py").write_text("WEIGHT = 1\n")
    (package / "front.py").write_text("from shop.heavy import WEIGHT\n")
    (package / "lazy.py").write_text(
        "def weight() -> int:\n    from shop.heavy import WEIGHT\n\n    return WEIGHT\n"
    )
    contract = (
        "[importlinter:contract:{id}]\nname = {id}\ntype = forbidden_at_module_level\n"
        "source_modules = shop.{id}\nforbidden_modules = shop.heavy\n"
    )
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = shop\ncontract_types =\n"
        "    forbidden_at_module_level: tests.import_contracts.ModuleLevelForbiddenContract\n"
        + contract.format(id="front")
        + contract.format(id="lazy")
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}

    status, output = lint_imports(cwd=tmp_path, env=env)

    assert status != 0, output
    assert "front BROKEN" in output
    assert "lazy KEPT" in output


def test_an_import_outside_the_allowed_modules_breaks_the_imports_only_contract(
    tmp_path: Path,
) -> None:
    package = tmp_path / "shop"
    (package / "rooms").mkdir(parents=True)
    for name in ("__init__.py", "rooms/__init__.py", "door.py", "cellar.py"):
        (package / name).write_text("")
    (package / "rooms" / "kitchen.py").write_text("import shop.door\n")
    (package / "rooms" / "hall.py").write_text("import shop.door\nimport shop.rooms.kitchen\n")
    (package / "rooms" / "attic.py").write_text("import shop.cellar\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = shop\ncontract_types =\n"
        "    imports_only: tests.import_contracts.ImportsOnlyContract\n"
        "[importlinter:contract:rooms]\nname = rooms\ntype = imports_only\n"
        "source_modules = shop.rooms.*\ninside = shop\nallowed_modules = shop.door\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}

    status, output = lint_imports(cwd=tmp_path, env=env)

    assert status != 0, output
    assert "shop.rooms.hall is not allowed to import shop.rooms.kitchen" in output
    assert "shop.rooms.attic is not allowed to import shop.cellar" in output
    assert "shop.rooms.kitchen is not allowed" not in output
