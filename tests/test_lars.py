"""The batched LARS-lasso path (explainers.lars) against scikit-learn's lars_path."""

import numpy as np
import pytest
from sklearn.linear_model import lars_path

from explainers.lars import GramRows, lasso_supports


def unit_columns(x, y):
    x = x - x.mean(0)
    y = y - y.mean()
    return x / np.linalg.norm(x, axis=0), y / np.linalg.norm(y)


def reference_supports(x, y, ks):
    """lars_path's active set on the first stretch of the path with k non-zeros."""
    _, _, coefs = lars_path(x, y, method="lasso", max_iter=10 * max(ks))
    stretches = [
        np.flatnonzero((coefs[:, t] != 0) | (coefs[:, t + 1] != 0))
        for t in range(coefs.shape[1] - 1)
    ]
    return {k: next(s for s in stretches if s.size == k) for k in ks}


def gaussian_problem(seed, n=200, d=50, informative=12):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x[:, :informative] @ rng.normal(size=informative) + rng.normal(size=n)
    return unit_columns(x, y)


def correlated_problem(seed, n=60, d=30):
    """Strongly correlated columns: paths on which features leave the active set."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ (0.6 * rng.normal(size=(d, d)) + np.eye(d))
    y = x[:, :8] @ rng.normal(size=8) + rng.normal(size=n)
    return unit_columns(x, y)


def ours(problems, ks, *, rows=False, first=None):
    xy = np.stack([x.T @ y for x, y in problems])
    n = problems[0][0].shape[0]
    if not rows:
        gram = np.stack([x.T @ x for x, _ in problems])
        return lasso_supports(xy, ks, n_samples=n, gram=gram)
    source = GramRows(xy.shape[1])
    for (x, _), c in zip(problems, xy, strict=True):
        source.add(x, np.ones(x.shape[1]), np.abs(c), first=first or max(ks) + 16)
    return lasso_supports(xy, ks, n_samples=n, rows=source), source


@pytest.mark.parametrize("rows", [False, True])
def test_same_supports_as_lars_path_on_well_conditioned_problems(rows):
    ks = [1, 3, 10, 25]
    problems = [gaussian_problem(seed) for seed in range(12)]
    found = ours(problems, ks, rows=rows)
    found = found[0] if rows else found
    for (x, y), got in zip(problems, found, strict=True):
        ref = reference_supports(x, y, ks)
        for k in ks:
            np.testing.assert_array_equal(got[k], ref[k])


def test_same_supports_as_lars_path_when_features_leave():
    ks = list(range(1, 16))
    problems = [correlated_problem(seed) for seed in range(40)]
    leaving = 0
    for (x, y), got in zip(problems, ours(problems, ks), strict=True):
        _, _, coefs = lars_path(x, y, method="lasso", max_iter=200)
        leaving += bool(np.any(np.diff(np.count_nonzero(coefs, axis=0)) < 0))
        ref = reference_supports(x, y, ks)
        for k in ks:
            np.testing.assert_array_equal(got[k], ref[k])
    assert leaving >= 30  # the lasso modification is exercised, not just plain LARS


def test_a_batch_selects_what_each_problem_selects_alone():
    problems = [gaussian_problem(seed, d=80) for seed in range(6)]
    together = ours(problems, [5, 20])
    for p, got in zip(problems, together, strict=True):
        alone = ours([p], [5, 20])[0]
        for k in (5, 20):
            np.testing.assert_array_equal(got[k], alone[k])


def test_rows_computed_on_demand_match_the_whole_gram():
    problems = [gaussian_problem(seed, n=300, d=120, informative=60) for seed in range(4)]
    whole = ours(problems, [40])
    # a first block of 4 rows forces many extension blocks along each path
    lazy, source = ours(problems, [40], rows=True, first=4)
    for a, b in zip(whole, lazy, strict=True):
        np.testing.assert_array_equal(a[40], b[40])
    computed = [int(np.count_nonzero(w >= 0)) for w in source.where]
    assert all(40 <= c < 120 for c in computed), computed  # more than the first block, not all


def test_scaled_design_columns_are_normalised_by_their_norms():
    x, y = gaussian_problem(3)
    scale = np.linspace(0.5, 3.0, x.shape[1])
    source = GramRows(x.shape[1])
    source.add(x * scale, scale, np.abs(x.T @ y), first=10)
    got = lasso_supports((x.T @ y)[None], [10], n_samples=x.shape[0], rows=source)[0]
    np.testing.assert_array_equal(got[10], reference_supports(x, y, [10])[10])


def test_an_exact_tie_goes_to_the_lower_index_and_a_duplicate_never_joins():
    x, y = gaussian_problem(5, d=20)
    best = int(np.argmax(np.abs(x.T @ y)))
    x = np.column_stack([x, x[:, best]])  # feature 20 duplicates the best feature
    gram, xy = x.T @ x, x.T @ y
    # the same numbers bit for bit (a matrix product may round the two copies differently)
    gram[20], gram[:, 20], xy[20] = gram[best], gram[best], xy[best]
    gram[20, 20] = gram[best, best]
    found = lasso_supports(xy[None], [1, 10], n_samples=200, gram=gram[None])[0]
    np.testing.assert_array_equal(found[1], [best])  # the tie: the lower index joins
    assert best in found[10] and 20 not in found[10]  # the copy is degenerate: never joins
    np.testing.assert_array_equal(found[10], reference_supports(x[:, :20], y, [10])[10])


def test_a_path_that_ends_early_returns_its_final_active_set():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(100, 30))
    x, y = unit_columns(x, x[:, [2, 9, 17]] @ np.array([1.0, -2.0, 0.5]))  # exact, 3 features
    found = ours([(x, y)], [2, 3, 8])[0]
    np.testing.assert_array_equal(found[3], [2, 9, 17])
    np.testing.assert_array_equal(found[8], [2, 9, 17])  # nothing left to explain
    assert found[2].size == 2 and set(found[2]) < {2, 9, 17}


def test_bad_arguments_are_refused():
    x, y = gaussian_problem(0, d=10, informative=4)
    xy, gram = (x.T @ y)[None], (x.T @ x)[None]
    with pytest.raises(ValueError, match="exactly one"):
        lasso_supports(xy, [3], n_samples=200)
    with pytest.raises(ValueError, match="gram must be"):
        lasso_supports(xy, [3], n_samples=200, gram=gram[:, :5])
    with pytest.raises(ValueError, match="ks must be"):
        lasso_supports(xy, [0], n_samples=200, gram=gram)
    with pytest.raises(ValueError, match="rows hold"):
        lasso_supports(xy, [3], n_samples=200, rows=GramRows(10))


def few_distinct_neighbours(seed, n=40, d=120):
    """A design like a data neighbourhood's: few distinct sparse images, pixels that move
    together, so that some columns are (nearly) combinations of others."""
    rng = np.random.default_rng(seed)
    base = (rng.random((n, d // 4)) < 0.3) * rng.random((n, d // 4))
    x = np.repeat(base, 4, axis=1) + 1e-7 * rng.normal(size=(n, d))  # blocks of 4 near-twins
    x[:, 0 : d - 7 : 7] = 0.5 * x[:, 1 : d - 6 : 7]  # exact multiples of other columns
    y = x[:, :10] @ rng.normal(size=10) + 0.01 * rng.normal(size=n)
    x, y = x - x.mean(0), y - y.mean()
    norms = np.linalg.norm(x, axis=0)
    x = np.where(norms > 0, x / np.where(norms > 0, norms, 1), 0)
    return x, y / np.linalg.norm(y)


def test_nearly_collinear_designs_end_cleanly_and_do_not_depend_on_the_batch():
    """Degenerate columns are excluded (the explicit inverse would break down on them),
    and a problem's supports do not depend on which other problems share its batch."""
    import warnings

    problems = [few_distinct_neighbours(seed) for seed in range(12)]
    ks = [5, 20, 35]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no invalid sqrt, no division by zero
        together = ours(problems, ks)
        alone = [ours([p], ks)[0] for p in problems]
        reordered = ours(problems[::-1], ks)[::-1]
    for a, b, c in zip(together, alone, reordered, strict=True):
        for k in ks:
            np.testing.assert_array_equal(a[k], b[k])
            np.testing.assert_array_equal(a[k], c[k])
            assert a[k].size <= k
