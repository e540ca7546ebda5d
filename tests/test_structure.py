"""The package's shape: no import runs upward, no machine path in the code, every package installable."""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "clip_surgery_seg"
# A module may import its own floor and the floors below it; the packages of one floor (models,
# datasets, evaluation, visualization) do not import each other.
FLOORS = {
    "errors": 0, "named": 0, "fileio": 0, "resources": 0, "tables": 0, "mmcv_compat": 0, "__init__": 0,
    "protocols": 0, "results": 0,
    "models": 1, "datasets": 1, "evaluation": 1, "visualization": 1,
    "data_prep": 2, "segmentors": 2, "registry": 2,
    "reporting": 3,
    "engine": 4,
    "cli": 5,
}
SIBLINGS_APART = 1


def _part(module: Path) -> str:
    rel = module.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imported_parts(module: Path):
    tree = ast.parse(module.read_text())
    package = module.relative_to(REPO).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = list(base) + (node.module.split(".") if node.module else [])
                names = [target + [alias.name] for alias in node.names] if not node.module else [target]
            elif node.module and node.module.startswith("clip_surgery_seg"):
                names = [node.module.split(".")]
            else:
                continue
            for name in names:
                if len(name) > 1:
                    yield name[1], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "clip_surgery_seg" and len(parts) > 1:
                    yield parts[1], node.lineno


def test_every_package_module_has_a_floor():
    parts = {_part(p) for p in PACKAGE.rglob("*.py") if "_packaged" not in p.parts}
    assert parts <= set(FLOORS), parts - set(FLOORS)


def test_no_import_runs_upward_or_sideways():
    problems = []
    for module in sorted(PACKAGE.rglob("*.py")):
        if "_packaged" in module.parts:
            continue
        here = _part(module)
        for there, line in _imported_parts(module):
            if there not in FLOORS or there == here:
                continue
            upward = FLOORS[there] > FLOORS[here]
            sideways = FLOORS[there] == FLOORS[here] == SIBLINGS_APART
            if upward or sideways:
                problems.append(f"{module.relative_to(REPO)}:{line} imports {there} "
                                f"(floor {FLOORS[there]}) from {here} (floor {FLOORS[here]})")
    assert not problems, "\n".join(problems)


def test_every_package_folder_is_a_package():
    for folder in {p.parent for p in PACKAGE.rglob("*.py") if "_packaged" not in p.parts}:
        assert (folder / "__init__.py").is_file(), f"{folder} has no __init__.py: a non-editable install drops it"


MACHINE_PATH = re.compile(r"(?<![\w.{])/(?:work|home|root|Users|mnt)/[\w.-]+")


def _tracked_files():
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    return [REPO / line for line in listed.stdout.splitlines()]


def test_no_machine_path_and_no_link_out_of_the_repository():
    problems = []
    for path in _tracked_files():
        if path.suffix not in (".py", ".md", ".cfg", ".toml", ".txt", ".json", ".in") and path.name != "run":
            continue
        if not path.is_file() or path.resolve() == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if MACHINE_PATH.search(line) or (path.suffix == ".md" and re.search(r"\]\(\.\./", line)):
                problems.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not problems, "\n".join(problems)
