"""The MNIST replication as built-in study projects: one pipeline for both.

`--project mnist-demo` runs the demo preset's settings through the study-project front
end (study.toml, the registry's factory, the survey block); `--preset demo` through the
replication's.  Both plan and compute with the same engine and must draw the same maps.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from explainers.bundle import read_bundle
from explainers.precompute import PRESETS, project_settings
from explainers.project import builtin_projects, load_project, project_maps_dir
from explainers.shipped import shipped_maps, shipped_model
from study_server.survey import MNIST_DESIGN_V2, SurveyDesign

from .project_fixtures import digits_project, run_cli, run_cli_error

SHIPPED_MAPS, SHIPPED_MODEL = shipped_maps(), shipped_model()


@pytest.fixture(scope="module")
def demo_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("builtin")
    common = ["--no-cache", "--quiet"]
    run_cli("precompute", "--model", SHIPPED_MODEL, "--data", "embedded", "--preset", "demo",
            *common, "--out", root / "preset")  # fmt: skip
    run_cli("precompute", "--project", "mnist-demo", *common, "--out", root / "project")
    return root / "preset", root / "project"


@pytest.mark.parametrize("name", ["maps.npz", "images.npz"])
def test_the_demo_project_and_the_demo_preset_draw_identical_arrays(demo_pair, name):
    preset, project = (np.load(d / name) for d in demo_pair)
    assert sorted(preset.files) == sorted(project.files)
    for key in preset.files:
        np.testing.assert_array_equal(preset[key], project[key], err_msg=key)


def test_the_builtin_projects_survey_is_the_pinned_mnist_design(demo_pair):
    bundle = read_bundle(demo_pair[1])
    assert bundle.manifest["survey"]["lookalike"]["3"] == 8
    assert SurveyDesign.from_bundle(bundle) == MNIST_DESIGN_V2
    # precompute without --project runs the built-in project: the same survey block
    preset = read_bundle(demo_pair[0])
    assert preset.manifest["survey"] == bundle.manifest["survey"]
    assert SurveyDesign.from_bundle(preset) == MNIST_DESIGN_V2
    assert preset.manifest["generator"]["command"] == "normlime precompute"
    assert bundle.manifest["generator"]["command"] == "normlime precompute --project"


def test_the_presets_are_the_builtin_projects():
    assert builtin_projects() == ("mnist", "mnist-demo", "mnist-noise", "mnist-paper")
    for preset, project in (("stable", "mnist"), ("demo", "mnist-demo"),
                            ("paper", "mnist-paper"), ("noise", "mnist-noise")):  # fmt: skip
        assert PRESETS[preset] == project_settings(load_project(project))
    # the stable project's numbers are the ones the shipped bundle was made with
    shipped = json.loads((SHIPPED_MAPS / "manifest.json").read_text())["generator"]
    assert asdict(PRESETS["stable"].lime) == shipped["lime"]
    assert asdict(PRESETS["stable"].per_image) == shipped["per_image"]


def test_a_builtin_project_writes_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = load_project("mnist-demo")
    assert project.builtin and project.cache_dir is None  # the shared cache
    # the package folder is read-only: maps go under the current directory
    assert project.maps_dir == Path("artifacts/mnist-demo/maps")
    assert project_maps_dir("mnist-demo") == project.maps_dir
    (tmp_path / "mnist-demo").mkdir()  # a folder of that name is a path, not the built-in
    line = run_cli_error("precompute", "--project", "mnist-demo")
    assert "no project at" in line


def test_the_runs_options_reach_a_project_or_are_refused_in_one_line(tmp_path):
    root = digits_project(tmp_path / "digits")
    line = run_cli_error("precompute", "--project", root, "--data", "embedded")
    assert "--data replaces an MNIST dataset's path" in line and "'callable'" in line
    line = run_cli_error("precompute", "--project", root, "--scheduler", "tcp://127.0.0.1:9")
    assert "--scheduler sends the model to Dask workers as a file" in line
    line = run_cli_error("precompute", "--project", "mnist-demo", "--preset", "stable")
    assert line == "Error: --preset does not apply with --project: the project's study.toml sets it"


def test_reproduce_with_a_project_computes_the_projects_maps(tmp_path, demo_pair):
    """reproduce --project: the maps step runs the project's study.toml (same arrays as
    precompute --project) instead of the preset's bundle."""
    from analysis.reproduce import PRESETS as REPRODUCE_PRESETS
    from analysis.reproduce import _maps_step

    project = load_project("mnist-demo")
    folder, note = _maps_step(tmp_path, REPRODUCE_PRESETS["smoke"], None, "embedded", 0,
                              lambda _m: None, project)  # fmt: skip
    assert folder == tmp_path / "maps-bundle" and note.startswith("precompute --project")
    ours, theirs = np.load(folder / "maps.npz"), np.load(demo_pair[1] / "maps.npz")
    for key in theirs.files:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_data_given_on_the_command_line_is_relative_to_the_working_directory(
    tmp_path, monkeypatch
):
    from explainers.project import ProjectError, with_data

    monkeypatch.chdir(tmp_path)
    project = load_project("mnist")
    assert with_data(project, "raw/mnist").dataset["path"] == str(tmp_path.resolve() / "raw/mnist")
    assert with_data(project, "embedded").dataset["path"] == "embedded"
    assert project.dataset["path"] != str(tmp_path.resolve() / "raw/mnist")  # a copy
    digits = load_project(digits_project(tmp_path / "digits"))
    with pytest.raises(ProjectError, match="--data replaces an MNIST dataset's path"):
        with_data(digits, "raw/mnist")


def test_a_folder_named_like_a_built_in_project_gets_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()  # e.g. the MNIST data's own folder
    line = run_cli_error("evaluate", "--project", "mnist", "--out", tmp_path / "ev")
    assert "hides the built-in project 'mnist'" in line
    assert not (tmp_path / "ev").exists()
