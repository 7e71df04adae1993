"""pyproject.toml and environment.yml list the same dependencies at the same versions."""

import re
import tomllib

from ruamel.yaml import YAML

from tests.helpers import ROOT


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    return dict(re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==(\S+)", spec).groups() for spec in specs)


def conda_pins() -> dict[str, str]:
    env = YAML(typ="safe").load((ROOT / "environment.yml").read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pins.update(dict(spec.split("==") for spec in dep["pip"]))
        elif "=" in dep and not dep.startswith(("python=", "pip")):
            name, version = dep.split("=", 1)
            pins[name] = version
    return pins


def normal(pins: dict[str, str]) -> dict[str, str]:
    return {re.sub(r"\[.*\]", "", name).lower().replace("_", "-"): v for name, v in pins.items()}


def test_environment_yml_matches_pyproject():
    assert normal(conda_pins()) == normal(pyproject_pins())


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [
        s for extra in project["optional-dependencies"].values() for s in extra]
    assert all("==" in spec for spec in specs), specs
