"""A study project's bad input: one line, exit code 2, and nothing already stored changes."""

from __future__ import annotations

import shutil

import pytest

from tests.project_fixtures import digits_project, edit, run_cli, run_cli_error


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = digits_project(tmp_path_factory.mktemp("trained"))
    edit(root / "study.toml", ("epochs = 25", "epochs = 3"))
    run_cli("train", "--project", root)
    return root


@pytest.fixture
def project(trained, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(trained, root, ignore=shutil.ignore_patterns("maps", "cache", "__pycache__"))
    return root


def _precompute_error(root) -> str:
    line = run_cli_error("precompute", "--project", root, "--quiet")
    assert not (root / "maps").exists()  # nothing written
    return line


def test_a_model_whose_output_is_not_one_score_per_class(project):
    (project / "seven_model.py").write_text(
        "from torch import nn\n\n\ndef build():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 7))\n"
    )
    edit(project / "study.toml", ('callable = "model:build"', 'callable = "seven_model:build"'),
         ('weights = "weights.pt"', '# no weights'))  # fmt: skip
    line = _precompute_error(project)
    assert "output for a batch of 2 has shape (2, 7); expected (N, C) = (2, 10)" in line


def test_a_callable_that_cannot_be_imported(project):
    edit(project / "study.toml", ('callable = "model:build"', 'callable = "no_such_mod:build"'))
    assert "cannot import 'no_such_mod'" in _precompute_error(project)
    edit(project / "study.toml", ('"no_such_mod:build"', '"model:no_such_function"'))
    assert "'model' has no 'no_such_function'" in _precompute_error(project)


def test_a_dataset_with_a_class_the_config_does_not_name(project):
    edit(project / "study.toml", ('"7", "8", "9"]', '"7", "8"]'))
    line = _precompute_error(project)
    assert "include class 9, but the project names only 9 classes" in line


def test_an_image_folder_with_an_unnamed_class(project):
    from PIL import Image

    for name in ("0", "1", "cat"):
        (project / "imgs" / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(project / "imgs" / name / "a.png")
    old = 'kind = "callable"\ncallable = "explainers.datasets:sklearn_digits"'
    edit(project / "study.toml", (old, 'kind = "imagefolder"\npath = "imgs"\nchannels = 1'))
    assert "class folder 'cat', which the project's [classes] names" in _precompute_error(project)


def test_a_method_that_needs_a_layer_the_model_lacks(project):
    with (project / "study.toml").open("a") as f:
        f.write('\n[[methods]]\nname = "gradcam"\nkind = "captum"\n'
                'attribution = "LayerGradCam"\nlayer = "conv9"\n')  # fmt: skip
    line = _precompute_error(project)
    assert "method 'gradcam'" in line and "the model has no layer 'conv9'" in line
    assert "its top-level layers are 0, 1, 2" in line


def test_inputs_outside_the_clip_range_lime_assumes(project):
    edit(
        project / "study.toml",
        ('neighbourhood = "data"', 'neighbourhood = "gaussian"'),
        ("effective_size = 200", "# effective_size = 200"),
        ('features = "pixels"', 'features = "pixels"\nclip = [0.2, 0.8]'),
    )
    line = _precompute_error(project)
    assert "outside LIME's clip range [0.2, 0.8]" in line


@pytest.mark.parametrize("key", ["sigma = 0.3", "clip = [0.0, 1.0]", 'perturbation = "hide"'])
def test_noise_settings_are_refused_with_neighbours_drawn_from_data(project, key):
    edit(project / "study.toml", ('features = "pixels"', f'features = "pixels"\n{key}'))
    line = _precompute_error(project)
    name = key.split(" ")[0]
    assert f"[lime] {name} applies to neighbourhood = \"gaussian\" only" in line


def test_a_neighbourhood_larger_than_the_training_images_is_refused(project):
    edit(project / "study.toml", ("effective_size = 200", "effective_size = 5000"))
    line = _precompute_error(project)
    assert "effective size 5000 needs more than 5000 training images" in line


def test_an_unknown_captum_class_and_an_unknown_kind(project):
    edit(project / "study.toml", ('attribution = "Saliency"', 'attribution = "Salience"'))
    assert "captum.attr has no attribution class 'Salience'" in _precompute_error(project)
    edit(project / "study.toml", ('kind = "captum"\nattribution = "Salience"', 'kind = "magic"'))
    assert "[methods #3] kind is an unknown kind 'magic'" in _precompute_error(project)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("[train]", "[trian]", "unknown section [trian]"),
        ("repeats = 1", "repeats = 0", "[survey] repeats must be a whole number between 1 and 20"),
        ('question = "Which explanation best highlights what makes this a {class}?"',
         'question = "Which is best?"', "[survey] question must contain {class}"),
        ('# classes = ["3", "5", "8"]', 'classes = ["3", "cat"]',
         "[survey] classes names 'cat', which is not one of"),
        ('display = "heatmap"', 'display = "3d"', "[survey] display must be a string (one of"),
        ("n_features = 16", "n_features = 600", "K=600 needs n_samples >= 1200"),
        ('name = "saliency"', 'name = "normlime"', "two [[methods]] are named 'normlime'"),
        ('features = "pixels"', 'features = { kind = "slic" }', "[lime] features"),
        ("repeats = 1", "repeats = 1\noptions = 4",
         "[survey] options = 4 must equal the number of methods shown (3)"),
        ("repeats = 1", "repeat = 1", "[survey] repeat is not a [survey] setting"),
        ('kind = "callable"', 'kind = "csv"', "[dataset] kind must be a string (one of"),
        ("batch_size = 64", "batch_size = 64\nmomentum = 0.9", "[train] momentum is not a [train]"),
    ],
)  # fmt: skip
def test_an_invalid_study_toml_is_one_line_naming_the_key(project, old, new, message):
    edit(project / "study.toml", (old, new))
    assert message in _precompute_error(project)


def test_a_survey_of_more_than_six_methods(project):
    with (project / "study.toml").open("a") as f:
        for k in range(4):
            f.write(f'\n[[methods]]\nname = "r{k}"\nkind = "random"\n')
    assert "must show 2 to 6 methods (one option each), got 7" in _precompute_error(project)


def test_a_failed_run_leaves_the_previous_bundle_as_it_was(project):
    edit(project / "study.toml", ("per_class = 20", "per_class = 2"),
         ("n_steps = 16", "n_steps = 2"))  # fmt: skip
    run_cli("precompute", "--project", project, "--quiet")
    before = {p: p.read_bytes() for p in (project / "maps").rglob("*") if p.is_file()}
    edit(project / "study.toml", ('attribution = "Saliency"', 'attribution = "Salience"'))
    line = run_cli_error("precompute", "--project", project, "--quiet")
    assert "Salience" in line
    assert {p: p.read_bytes() for p in (project / "maps").rglob("*") if p.is_file()} == before


def test_init_project_refuses_to_overwrite_and_missing_projects_are_named(project, tmp_path):
    assert "already exists; not overwriting it" in run_cli_error("init-project", project)
    line = run_cli_error("precompute", "--project", tmp_path / "nowhere")
    assert "no project at" in line and "normlime init-project" in line
    line = run_cli_error("precompute", "--project", project, "--methods", "lime")
    assert line.endswith("--methods does not apply with --project: the project's study.toml "
                         "sets it")  # fmt: skip


@pytest.mark.parametrize("command", ["kar", "occlusion", "reproduce"])
def test_the_benchmarks_refuse_a_project_not_of_the_papers_shape_in_one_line(
    command, project, tmp_path
):
    line = run_cli_error(command, "--project", project, "--out", tmp_path / "out")
    assert f"`normlime {command} --project {project}`: {command} runs on the paper's CNN" in line
    assert "its [dataset] kind is 'callable', not MNIST (mnist-idx)" in line
    line = run_cli_error(command, "--project", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert "no project at" in line
    assert not (tmp_path / "out").exists()


def test_kar_takes_a_builtin_projects_model_data_seed_and_methods(tmp_path):
    """kar --project mnist-demo runs as the equivalent explicit options would."""
    from explainers.shipped import shipped_model

    common = ["--preset", "smoke", "--fractions", "0.5", "--runs", "1", "--epochs", "1",
              "--train-size", "400", "--test-size", "100", "--explain-per-class", "2",
              "--no-progress"]  # fmt: skip
    run_cli("kar", "--project", "mnist-demo", *common, "--out", tmp_path / "a")
    run_cli("kar", "--model", shipped_model(), "--data", "embedded", "--seed", "0",
            "--methods", "normlime,lime,smoothgrad,vargrad", *common, "--out", tmp_path / "b")
    a, b = ((tmp_path / d / "kar-summary.csv").read_text() for d in "ab")
    assert a == b and "vargrad" in a


def test_analyze_with_a_project_needs_its_bundle_and_no_conflicting_options(project, tmp_path):
    votes = tmp_path / "votes.csv"
    votes.write_text("participant_id,question_index,is_attention_check,digit,chosen_method,passed\n")
    line = run_cli_error("analyze", "--votes", votes, "--out", tmp_path / "o", "--project", project)
    assert "has no survey: run `normlime precompute --project" in line or "is missing" in line
    line = run_cli_error("analyze", "--votes", votes, "--out", tmp_path / "o", "--project", project,
                         "--methods", "a,b")  # fmt: skip
    assert "--project sets the methods and the survey" in line


def test_a_benchmark_reads_a_projects_data_path_relative_to_the_project(
    full_mnist_path, tmp_path, monkeypatch
):
    """`kar --project DIR` with `[dataset] path = "data"` reads DIR/data, from any
    working directory."""
    from analysis.errors import _accept
    from explainers.project import BUILTIN

    root = tmp_path / "proj"
    root.mkdir()
    text = (BUILTIN / "mnist-demo" / "study.toml").read_text()
    assert 'path = "embedded"' in text
    (root / "study.toml").write_text(text.replace('path = "embedded"', 'path = "data"'))
    (root / "data").symlink_to(full_mnist_path, target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _accept("kar", str(root)).data_spec == str(root.resolve() / "data")
    assert _accept("kar", "mnist-demo").data_spec == "embedded"
