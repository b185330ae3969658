"""The environment the tests run in holds what pyproject.toml declares, within its ranges.

The ranges' floors are where known advisories end (see the comment above them in
pyproject.toml); a test run on an older package would vouch for a release that
users can no longer install.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("requirement", declared(), ids=str)
def test_each_dependency_is_installed_within_its_range(requirement: Requirement) -> None:
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.fail(f"{requirement.name} is declared but not installed")
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is outside {requirement.specifier}"
    )
