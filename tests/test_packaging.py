"""The installable package carries every file the bridge reads at run time (the Docker image installs the
wheel, not the source tree): SQL next to its manager, the dashboard's templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_wheel_holds_every_file_of_the_package(tmp_path):
    # Built from a copy: an in-tree build leaves build/ behind, whose stale files would be packed too.
    tree = tmp_path / "src"
    shutil.copytree(PROJECT_ROOT / "bridge", tree / "bridge", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, tree / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(tree)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    source = {str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "bridge").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert source - packed == set()
