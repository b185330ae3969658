"""What a render's bytes depend on besides its numbers and size, known without drawing.

A render is deterministic: the same numbers and size give the same bytes, with
the same drawing code and libraries. `renderer_identity` digests that code and
those libraries, so a deploy that changes any of them changes every render
ETag, and no tag ever names two different PNGs. The code is found, not listed:
every module of this package, and every module of `core` that one of them
imports, transitively, read from its imports (so a helper module added
tomorrow is in the set the day it is imported).
"""

from __future__ import annotations

import ast
import hashlib
import zlib
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGE = "core.plotting"
ROOT_PACKAGE = "core"
LIBRARIES = ("matplotlib", "numpy")
# This file is core/plotting/sources.py: the `core` package is two folders up.
_ROOT_DIR = Path(__file__).resolve().parent.parent


@cache
def renderer_identity() -> bytes:
    """A digest of the drawing code (`render_sources`) and the libraries under it."""
    digest = hashlib.blake2b(digest_size=32)
    for library in LIBRARIES:
        digest.update(f"{library} {metadata.version(library)}\n".encode())
    digest.update(f"zlib {zlib.ZLIB_RUNTIME_VERSION}\n".encode())  # the PNG's compression
    for name, path in render_sources().items():
        digest.update(f"{name}\n".encode())
        digest.update(path.read_bytes())
    return digest.digest()


def render_sources() -> dict[str, Path]:
    """{module name: source file} of every module a render may run, sorted by name:
    this package's modules and the `core` modules they import, transitively."""
    package_dir = _ROOT_DIR.joinpath(*PACKAGE.split(".")[1:])
    pending = [
        _module_name(path, package_dir)
        for path in sorted(package_dir.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    found: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _origin(name)
        if path is None:
            continue
        found[name] = path
        pending.extend(_core_imports(name, path))
    return dict(sorted(found.items()))


def _module_name(path: Path, package_dir: Path) -> str:
    parts = path.relative_to(package_dir).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _origin(name: str) -> Path | None:
    """The source file of module `name` under `core`, found without importing it;
    None for a name that is no module (an attribute imported from one)."""
    base = _ROOT_DIR.joinpath(*name.split(".")[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _core_imports(name: str, path: Path) -> list[str]:
    """The `core` modules (and their packages) that module `name` imports, at any level."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            # `from package import module` imports a module; `from module import name` not.
            imported += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    modules: list[str] = []
    for module in imported:
        if module == ROOT_PACKAGE or module.startswith(ROOT_PACKAGE + "."):
            parts = module.split(".")
            modules += [".".join(parts[: index + 1]) for index in range(len(parts))]
    return modules
