"""The SageMaker install path: environment.yml installs exactly requirements.txt, and every pin there is what
this test run uses (so each pin exists on the package index: it was installed from it)."""

import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
            assert match, f"requirements.txt: {line!r} is not an exact pin NAME==VERSION"
            pins[match.group(1)] = match.group(2)
    return pins


def test_environment_yml_installs_requirements_and_the_package():
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    deps = env["dependencies"]
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-r requirements.txt" in pip_section and "-e ." in pip_section
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert python == f"python={sys.version_info.major}.{sys.version_info.minor}", \
        f"environment.yml asks for {python}; the tests ran on {sys.version_info.major}.{sys.version_info.minor}"
    assert "ipykernel" in deps, "the kernel registration in environment.yml's header needs ipykernel"


def test_every_pin_is_the_installed_version():
    wrong = {}
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed.split("+")[0] != pinned:  # torch's CPU build is '2.13.0+cpu'
            wrong[name] = (pinned, installed)
    assert not wrong, f"requirements.txt pins differ from the tested environment (pinned, installed): {wrong}"
