"""The method registry: one explicit table; seeds never depend on list order."""

from __future__ import annotations

import inspect

import pytest

from explainers import bundle, registry
from explainers.precompute import method_seed


def test_the_methods_and_their_streams():
    assert registry.STUDY_METHODS == bundle.STUDY_METHODS
    assert registry.STUDY_METHODS == ("normlime", "lime", "smoothgrad", "vargrad")
    assert registry.BASELINES == ("shap", "random", "inputxgrad", "std")
    # stream numbers are the positions the seeds of the shipped bundle were made with
    assert [s.stream for s in registry.methods()] == list(range(8))
    normlime = registry.method_spec("normlime")
    assert normlime.aggregate and normlime.cls is None and normlime.kind == registry.LOCAL_LIME
    assert registry.explainer_class("smoothgrad").__name__ == "SmoothGradSquared"
    with pytest.raises(ValueError, match="per-input methods are"):
        registry.explainer_class("normlime")
    with pytest.raises(ValueError, match="unknown method 'nope'; choose from normlime, lime"):
        registry.method_spec("nope")


def test_the_per_image_lime_explainer_and_the_lime_aggregate_have_distinct_names():
    assert registry.kind_class(registry.LOCAL_LIME).__name__ == "LocalLime"
    assert registry.LOCAL_LIME not in registry.ALL_METHODS
    assert "lime" not in registry.KINDS
    with pytest.raises(ValueError, match="unknown method kind 'lime'; per-image kinds are"):
        registry.kind_class("lime")


def test_every_kind_follows_the_one_construction_protocol():
    for kind, cls in registry.KINDS.items():
        params = list(inspect.signature(cls).parameters.values())
        assert params[0].name == "forward_func", kind
        assert "random_state" in {p.name for p in params}, kind
        assert not hasattr(cls, "from_settings") and not hasattr(cls, "from_config"), kind


def test_no_module_registers_itself():
    """The table is the only list: no decorator, no source-text scan."""
    import explainers

    root = inspect.getfile(explainers).rsplit("/", 1)[0]
    from pathlib import Path

    for path in Path(root).glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "@register" not in text and "register_aggregate(" not in text, path.name
    assert "read_text" not in inspect.getsource(registry)


def test_settings_params_keep_each_methods_own_defaults():
    assert registry.settings_params("smoothgrad", n_samples=None, score="logit") == {
        "score": "logit"
    }
    assert registry.settings_params("shap", n_samples=300, score="logit") == {"n_samples": 300}
    assert registry.settings_params("std", n_samples=300, score="logit") == {}


def test_a_seed_depends_on_the_methods_stream_not_on_the_list():
    seeds = {m: method_seed(0, m) for m in registry.ALL_METHODS}
    assert len(set(seeds.values())) == len(seeds)
    reordered = {m: method_seed(0, m) for m in reversed(registry.ALL_METHODS)}
    assert reordered == seeds


def test_build_names_an_unknown_parameter():
    with pytest.raises(ValueError, match="method kind 'std': unknown parameter 'nope'"):
        registry.build("std", lambda x: x, random_state=0, params={"nope": 1})
