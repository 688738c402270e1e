"""The conda environment and the pip project declare the same dependencies, and the README opens
with the two commands that CI and users run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI names; conda's libblas is the BLAS that PyTensor links,
# which a pip install gets from scipy-openblas32 (see cbcv.models.blas)
CONDA_TO_PYPI = {"python-duckdb": "duckdb", "libblas": "scipy-openblas32"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return dict(_split(r) for r in reqs)


def _environment() -> tuple[dict[str, str], str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps: dict[str, str] = {}
    python = ""
    for item in env["dependencies"]:
        assert isinstance(item, str), "pip: sections are not used; list conda packages only"
        name, spec = _split(item)
        if name == "python":
            python = spec
            continue
        if name == "pip":
            continue
        deps[CONDA_TO_PYPI.get(name, name)] = spec
    return deps, python


def test_environment_yml_matches_pyproject() -> None:
    pip_deps = _pyproject()
    conda_deps, python = _environment()
    assert set(conda_deps) == set(pip_deps), (
        f"only in environment.yml: {sorted(set(conda_deps) - set(pip_deps))}; "
        f"only in pyproject.toml: {sorted(set(pip_deps) - set(conda_deps))}"
    )
    differing = {k: (pip_deps[k], conda_deps[k]) for k in pip_deps if pip_deps[k] != conda_deps[k]}
    assert not differing, f"version constraints differ (pyproject, environment.yml): {differing}"
    assert python == "=3.11"


def test_requires_python_and_console_script() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["requires-python"] == ">=3.11"
    assert data["project"]["scripts"]["cbcv"] == "cbcv.cli:main"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", readme, re.S)
    assert first_block, "README has no command block"
    commands = [ln.strip() for ln in first_block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands == ["make report", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_make_report_builds_the_multi_cohort_company_with_its_backtests() -> None:
    """The default report is Madrigal's (existing and future customers, backtests); CDNOW is one
    ``CONFIG=`` away, as the README says."""
    import yaml

    default = re.search(r"^CONFIG \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert default and default.group(1) == "configs/madrigal.yaml"
    cfg = yaml.safe_load((ROOT / default.group(1)).read_text())
    assert "05_backtests" in cfg["report"]["notebooks"] and cfg["financials"]["market_size"]
    readme = (ROOT / "README.md").read_text()
    assert "make report CONFIG=configs/cdnow.yaml" in readme and (ROOT / "configs" / "cdnow.yaml").is_file()


def test_no_generated_output_is_tracked() -> None:
    """Run folders and derived data are generated: nothing under reports/ or data/processed/ is
    in git, and .gitignore keeps it out."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "reports", "data/processed"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked == []
    for path in ("reports/x/index.html", "data/processed/x/a.parquet"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path
