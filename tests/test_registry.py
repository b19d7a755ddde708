"""The method registry: methods register themselves; seeds never depend on list order."""

from __future__ import annotations

import pytest

from explainers import registry
from explainers.precompute import method_seed


def test_the_registered_methods_and_their_streams():
    assert registry.STUDY_METHODS == ("normlime", "lime", "smoothgrad", "vargrad")
    assert registry.BASELINES == ("shap", "random", "inputxgrad", "std")
    # stream numbers are the positions the seeds of the shipped bundle were made with
    assert [s.stream for s in registry.methods()] == list(range(8))
    assert (
        registry.method_spec("normlime").aggregate and registry.method_spec("normlime").cls is None
    )
    assert registry.explainer_class("smoothgrad").__name__ == "SmoothGradSquared"
    with pytest.raises(ValueError, match="per-input methods are"):
        registry.explainer_class("normlime")


def test_adding_a_method_reseeds_no_other(monkeypatch):
    before = {m: method_seed(0, m) for m in registry.ALL_METHODS}
    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))

    @registry.register("mine", stream=100)
    class Mine:
        @classmethod
        def from_settings(cls, forward_func, *, random_state, n_samples=None, score=None):
            return cls()

        def attribute(self, inputs, target):
            return inputs

    assert registry.ALL_METHODS[-1] == "mine" and "mine" in registry.BASELINES
    assert {m: method_seed(0, m) for m in before} == before
    assert method_seed(0, "mine") not in before.values()
    with pytest.raises(ValueError, match="seed stream 2 of 'other' is already 'smoothgrad'"):
        registry.register("other", stream=2)(Mine)
    with pytest.raises(TypeError, match="from_settings"):
        registry.register("bare", stream=101)(type("Bare", (), {}))
