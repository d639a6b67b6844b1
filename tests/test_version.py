"""The version is defined once, in pyproject.toml: the installed package reports it and CITATION.cff repeats it (a
citation file cannot read it), with no release date while the changelog calls that version unreleased."""

import re
import tomllib
from importlib.metadata import version

from helpers import REPO

import bladefl_theory
import bladefl_validate


def _pyproject_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _citation_field(name: str) -> str | None:
    match = re.search(rf'^{name}:\s*"?([^"\n]+)"?\s*$', (REPO / "CITATION.cff").read_text(), re.MULTILINE)
    return match.group(1) if match else None


def test_the_package_and_the_citation_give_pyprojects_version():
    ours = _pyproject_version()
    assert bladefl_theory.__version__ == bladefl_validate.__version__ == version("bladefl") == ours
    assert _citation_field("version") == ours


def test_the_citation_dates_no_release_the_changelog_calls_unreleased():
    ours = _pyproject_version()
    heading = re.search(rf"^## {re.escape(ours)}\b(.*)$", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    unreleased = heading is None or "unreleased" in heading.group(1).lower()
    assert (_citation_field("date-released") is None) == unreleased
