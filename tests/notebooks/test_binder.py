"""binder/ validated offline (Docker cannot run here): the layout repo2docker expects, pins that agree
with pyproject.toml, a CPU-only torch, and a postBuild that fails loudly. ``bash .ci/binder-check``
installs the same package set into a fresh venv and runs the notebooks (slow; not in the default run).
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ._nb import ROOT

BINDER = ROOT / "binder"
EXTRAS = ("data", "notebook", "service", "tune")     # what the tutorials need at run time
CONDA_NAMES = {"torch": "pytorch-cpu", "matplotlib": "matplotlib-base"}   # PyPI name -> conda-forge
#: Files repo2docker would silently ignore beside an environment.yml (or that would bypass it).
IGNORED = ("requirements.txt", "runtime.txt", "Pipfile", "Pipfile.lock", "setup.py", "install.R")


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in EXTRAS:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    out: dict[str, Requirement] = {}
    for r in reqs:
        if r.name == "nbaimaas":
            continue
        key = r.name.lower()
        out[key] = Requirement(f"{key}{SpecifierSet(str(r.specifier)) & (out[key].specifier if key in out else SpecifierSet())}")
    return out


def environment() -> dict:
    return yaml.safe_load((BINDER / "environment.yml").read_text())


def conda_spec(dep: str) -> tuple[str, SpecifierSet]:
    """``name>=1,<=2`` / ``name=1.2`` (conda: 1.2.*) / ``name==1.2.3`` as a PEP 440 specifier."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", dep)
    name, spec = m.group(1).lower(), m.group(2).replace(" ", "")
    if re.fullmatch(r"=[^=<>!,]+", spec):
        spec = f"=={spec[1:]}.*" if spec.count(".") < 2 else f"=={spec[1:]}"
    return name, SpecifierSet(spec)


def env_packages() -> dict[str, SpecifierSet]:
    pkgs: dict[str, SpecifierSet] = {}
    for dep in environment()["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                r = Requirement(pip_dep.split("#")[0].strip())
                pkgs[r.name.lower()] = r.specifier
        else:
            name, spec = conda_spec(dep)
            pkgs[name] = spec
    return pkgs


def lower_bound(spec: SpecifierSet) -> Version | None:
    lows = [Version(s.version.rstrip(".*")) for s in spec if s.operator in (">=", "==", "~=", ">")]
    return max(lows) if lows else None


def upper_bound(spec: SpecifierSet) -> Version | None:
    highs = [Version(s.version.rstrip(".*")) for s in spec if s.operator in ("<=", "==", "<")]
    return min(highs) if highs else None


# -- layout -------------------------------------------------------------------------------------
def test_layout_repo2docker_expects():
    assert (BINDER / "environment.yml").is_file()
    assert (BINDER / "postBuild").is_file()
    for name in IGNORED:
        assert not (BINDER / name).exists(), f"binder/{name} would be ignored beside environment.yml"
    # With binder/ present repo2docker ignores configuration in the root: none may mislead there.
    for name in ("environment.yml", "requirements.txt", "runtime.txt", "postBuild", "apt.txt"):
        assert not (ROOT / name).exists(), f"{name} in the repository root is ignored by Binder"


def test_environment_parses_and_uses_conda_forge_python_311():
    env = environment()
    assert env["channels"][0] == "conda-forge"
    names = [conda_spec(d)[0] for d in env["dependencies"] if isinstance(d, str)]
    assert "python" in names and "pip" in names
    python = next(d for d in env["dependencies"] if isinstance(d, str) and conda_spec(d)[0] == "python")
    assert conda_spec(python)[1].contains("3.11.9")


def test_torch_comes_as_a_cpu_only_build():
    env = environment()
    conda = [conda_spec(d)[0] for d in env["dependencies"] if isinstance(d, str)]
    pip = [Requirement(p.split("#")[0].strip()).name.lower()
           for d in env["dependencies"] if isinstance(d, dict) for p in d.get("pip", [])]
    assert "pytorch-cpu" in conda or ("pytorch" in conda and "cpuonly" in conda)
    for cuda in ("pytorch-gpu", "pytorch-cuda", "cudatoolkit", "cuda-version"):
        assert cuda not in conda
    assert "torch" not in pip, "torch from PyPI is the multi-GB CUDA build"
    if "pytorch" in conda:
        assert "cpuonly" in conda


@pytest.mark.parametrize("name", sorted(pyproject_requirements()))
def test_every_runtime_dependency_is_pinned_compatibly(name):
    required = pyproject_requirements()[name].specifier
    pkgs = env_packages()
    key = CONDA_NAMES.get(name, name)
    assert key in pkgs or name in pkgs, f"{name} ({key} on conda-forge) is missing from binder/environment.yml"
    spec = pkgs.get(key, pkgs.get(name))
    low, high = lower_bound(spec), upper_bound(spec)
    assert low is not None, f"{key} has no lower bound in environment.yml"
    assert required.contains(low, prereleases=True), f"{key}{spec} allows {low}, outside pyproject's {name}{required}"
    req_high = upper_bound(required)
    if req_high is not None:
        assert high is not None and high <= req_high, f"{key}{spec} must stay within pyproject's {name}{required}"


def test_environment_lists_nothing_pyproject_does_not_know():
    known = {CONDA_NAMES.get(n, n) for n in pyproject_requirements()} | {"python", "pip"}
    assert set(env_packages()) - known == set()


# -- postBuild -----------------------------------------------------------------------------------
def test_post_build_is_executable_strict_and_installs_without_deps():
    path = BINDER / "postBuild"
    text = path.read_text()
    assert text.startswith("#!/"), "postBuild needs a shebang"
    assert os.access(path, os.X_OK), "postBuild must be executable (chmod +x; git keeps the bit)"
    assert re.search(r"^set -[a-z]*e", text, flags=re.M), "postBuild needs set -e"
    installs = [line for line in text.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert installs and all("--no-deps" in line for line in installs), "pip must not resolve torch from PyPI"
    assert any(re.search(r"\s(-e\s+)?\.(\s|$)", line) for line in installs), "postBuild installs the repository"


def test_post_build_is_executable_in_git_too():
    proc = subprocess.run(["git", "ls-files", "-s", "binder/postBuild"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip(), "binder/postBuild is not tracked by git"
    assert proc.stdout.split()[0] == "100755"


def test_no_start_script_or_one_that_hands_over():
    # repo2docker runs binder/start before the notebook server; none is needed here, and one
    # that does not end with exec "$@" would keep the server from starting.
    start = BINDER / "start"
    assert not start.exists() or start.read_text().rstrip().splitlines()[-1].strip() == 'exec "$@"'
