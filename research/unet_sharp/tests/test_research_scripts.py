"""Every script of research/unet_sharp/ still loads from its folder, and its paths exist."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from research_scripts import FOLDER, load_script

SCRIPTS = sorted(path.stem for path in FOLDER.glob("*.py"))


def test_the_folder_holds_the_scripts():
    assert {"decision_sweep", "lesion_contrast", "lesion_sizes", "postprocess_sweep",
            "real_examples", "tta_scales"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports(name):
    assert callable(load_script(name).main)


def test_paths_the_scripts_name_exist():
    assert load_script("tta_scales").SPLIT.is_file()
    root = load_script("real_examples").ROOT
    assert (root / "tests" / "geometry.py").is_file()  # its NRRD reader
    assert (root / "research" / "unet_sharp" / "default_weights.sh").is_file()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_default_weights_script_parses_and_names_files_that_exist():
    script = FOLDER / "default_weights.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    named = set(re.findall(r"research/[\w/.-]*\w", text))
    assert "research/unet_sharp/splits/phantoms-train-240.json" in named
    for path in named:
        assert (FOLDER.parents[1] / path).exists(), path
    assert "scripts/splits" not in text


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_device_script_parses_and_refuses_what_it_cannot_run(tmp_path):
    """device_v4.sh (issue 22's retraining on a lent GPU in one call) parses, names files
    that exist, and stops at once, before installing anything, without OUT or a step."""
    script = FOLDER / "device_v4.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    for path in set(re.findall(r"research/[\w/.-]*\w", script.read_text())):
        assert (FOLDER.parents[1] / path).exists(), path
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    no_out = subprocess.run(["bash", str(script), "run"], capture_output=True, text=True,
                            env=env)
    assert no_out.returncode != 0 and "OUT must name" in no_out.stderr
