"""The value benchmark's synthetic base and holdout scoring: what the README's comparison rests on."""

from __future__ import annotations

import numpy as np

from benchmarks.clv import evaluate
from benchmarks.purchase_history import generate, history, holdout


def test_the_generated_base_has_heterogeneous_buyers_and_churn() -> None:
    orders = generate(3000, 3 * 365, seed=2)
    counts = np.bincount(orders.customer[orders.purchase], minlength=orders.customers)
    assert counts.min() == 0 < counts.max() and counts.max() >= 10 * np.median(counts[counts > 0])
    # Not a purchase: about one order in ten (cancelled or returned).
    assert 0.07 < 1 - orders.purchase.mean() < 0.14
    h = history(orders, 730)
    assert (h.bought_prior_365 & ~h.bought_365).sum() > 100  # some stopped buying
    assert generate(3000, 3 * 365, seed=2).amount.tolist() == orders.amount.tolist()  # seeded


def test_history_counts_only_purchases_before_the_cutoff() -> None:
    orders = generate(500, 3 * 365, seed=4)
    h = history(orders, 730)
    before = orders.purchase & (orders.day < 730)
    assert h.purchases.sum() == before.sum()
    assert np.isclose(h.spend.sum(), orders.amount[before].sum())
    purchases, spend = holdout(orders, 730, 365)
    after = orders.purchase & (orders.day >= 730)
    assert purchases.sum() == after.sum() and np.isclose(spend.sum(), orders.amount[after].sum())


def test_bgnbd_ranks_holdout_spend_better_than_the_naive_baselines() -> None:
    result = evaluate(generate(6000, 3 * 365, seed=11), 730, 365)
    models = result["models"]
    best = models["BG/NBD + Gamma-Gamma"]
    for naive in ("naive: last calibration year again", "naive: calibration spend per day"):
        assert best["spend_spearman"] > models[naive]["spend_spearman"]
        assert best["spend_mae_eur"] < models[naive]["spend_mae_eur"]
    assert 0.8 < best["predicted_over_actual_total"] < 1.25
