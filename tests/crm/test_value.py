"""Lifetime value: the retention formula and the BG/NBD and Gamma-Gamma models, checked by hand and by
a second route (numerical integration over the mixing distributions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import gammaln

from bot.crm.value import (
    BgNbd,
    GammaGamma,
    History,
    ValueConfig,
    lifetime_values,
    retention_value,
    segment_retention,
)

MODEL = BgNbd(r=0.8, alpha=6.0, a=0.9, b=3.0)


def test_retention_formula_by_hand() -> None:
    # m = 100 a year, kept with r = 0.8, discounted at 10%: 100 * 0.8 / (1 + 0.1 - 0.8) = 266.67 for ever.
    assert retention_value(100.0, 0.8, 0.1, float("inf")) == pytest.approx(266.6667, abs=1e-3)
    # One year: 100 * 0.8 / 1.1 = 72.73; two: + 100 * 0.64 / 1.21 = 52.89 -> 125.62.
    assert retention_value(100.0, 0.8, 0.1, 1) == pytest.approx(72.7273, abs=1e-3)
    assert retention_value(100.0, 0.8, 0.1, 2) == pytest.approx(125.6198, abs=1e-3)
    assert retention_value(100.0, 0.0, 0.1, 3) == 0.0  # nobody comes back: nothing to come


def test_segment_retention_counts_who_bought_again() -> None:
    segment = np.array([0, 0, 0, 0, 1, 1, 2])
    before = np.array([True, True, True, False, True, True, False])
    after = np.array([True, False, False, True, True, True, True])
    shares = segment_retention(segment, before, after, 3)
    # Regular: 1 of the 3 who bought before bought again; key: 2 of 2; VIP: nobody to judge, so the
    # base's 3 of 5.
    assert shares.tolist() == pytest.approx([1 / 3, 1.0, 3 / 5])


def _rate_part(x: int, s: float) -> float:
    """Integral over Gamma(r, alpha) rates of lam^x e^(-lam s), done by hand (conjugacy)."""
    r, alpha = MODEL.r, MODEL.alpha
    return float(np.exp(gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + s)))


def _over_dropout(weight: object) -> float:
    """Integrate weight(p) over Beta(a, b) dropout chances numerically (the second route)."""
    drop = stats.beta(MODEL.a, MODEL.b)
    value, _error = integrate.quad(lambda p: weight(p) * drop.pdf(p), 0, 1, epsabs=1e-13, limit=200)  # type: ignore[operator]
    return float(value)


def _likelihood(x: int, t_x: float, T: float) -> float:
    def given(p: float) -> float:
        alive = (1 - p) ** x * _rate_part(x, T)
        gone = p * (1 - p) ** (x - 1) * _rate_part(x, t_x) if x > 0 else 0.0
        return alive + gone

    return _over_dropout(given)


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 20.0), (1, 5.0, 30.0), (4, 25.0, 40.0)])
def test_bgnbd_likelihood_matches_numerical_integration(x: int, t_x: float, T: float) -> None:
    got = MODEL.log_likelihood(np.array([x], float), np.array([t_x]), np.array([T]))[0]
    assert np.exp(got) == pytest.approx(_likelihood(x, t_x, T), rel=1e-6)


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 20.0), (2, 10.0, 30.0), (5, 38.0, 40.0)])
def test_bgnbd_expected_purchases_match_numerical_integration(x: int, t_x: float, T: float) -> None:
    t = 26.0

    def alive_and_buying(p: float) -> float:
        # Alive at T: (1-p)^x lam^x e^(-lam T); then 1/p (1 - e^(-lam p t)) purchases in the next t weeks.
        return (1 - p) ** x * (_rate_part(x, T) - _rate_part(x, T + p * t)) / p

    expected = _over_dropout(alive_and_buying) / _likelihood(x, t_x, T)
    got = MODEL.expected_purchases(t, np.array([x], float), np.array([t_x]), np.array([T]))[0]
    assert got == pytest.approx(expected, rel=1e-6)


def test_a_customer_silent_since_a_busy_start_is_probably_gone() -> None:
    x, t_x = np.array([6.0, 6.0]), np.array([10.0, 39.0])
    alive = MODEL.p_alive(x, t_x, np.array([40.0, 40.0]))
    assert alive[0] < 0.2 < 0.8 < alive[1]


def test_gamma_gamma_expected_spend_by_hand() -> None:
    spend = GammaGamma(p=6.0, q=4.0, gamma=15.0)
    # p (gamma + x m) / (p x + q - 1) = 6 * (15 + 2 * 20) / (12 + 3) = 22.
    assert spend.expected_spend(np.array([2.0]), np.array([20.0]))[0] == pytest.approx(22.0)
    # With no repeat purchase: the base's mean spend p gamma / (q - 1) = 30.
    assert spend.expected_spend(np.array([0.0]), np.array([0.0]))[0] == pytest.approx(30.0)


def test_fits_recover_the_parameters_of_simulated_customers() -> None:
    rng = np.random.default_rng(3)
    n, T = 4000, 52.0
    lam = rng.gamma(MODEL.r, 1 / MODEL.alpha, n)
    p = rng.beta(MODEL.a, MODEL.b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        now = 0.0
        while True:
            now += rng.exponential(1 / lam[i])
            if now > T:
                break
            x[i], t_x[i] = x[i] + 1, now
            if rng.random() < p[i]:
                break
    fitted = BgNbd.fit(x, t_x, np.full(n, T))
    assert fitted.r == pytest.approx(MODEL.r, rel=0.25) and fitted.alpha == pytest.approx(
        MODEL.alpha, rel=0.35
    )
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(MODEL.a / (MODEL.a + MODEL.b), rel=0.3)

    nu = rng.gamma(4.0, 1 / 15.0, n)
    counts = rng.integers(1, 8, n).astype(float)
    means = np.array([rng.gamma(6.0, 1 / v, int(c)).mean() for v, c in zip(nu, counts, strict=True)])
    spend = GammaGamma.fit(counts, means)
    assert spend.p * spend.gamma / (spend.q - 1) == pytest.approx(6.0 * 15.0 / 3.0, rel=0.1)


def _history(**given: Any) -> History:
    base: dict[str, Any] = {
        "purchases": np.array([3, 0]),
        "spend": np.array([300.0, 0.0]),
        "first_days_ago": np.array([500.0, 0.0]),
        "last_days_ago": np.array([30.0, 0.0]),
        "spend_365": np.array([200.0, 0.0]),
        "bought_365": np.array([True, False]),
        "bought_prior_365": np.array([True, True]),
        "tier_prior": np.array([0, 0]),
        "tier_now": np.array([0, 0]),
    }
    base.update(given)
    return History(**base)


def test_retention_model_on_a_two_customer_base_by_hand() -> None:
    config = ValueConfig(margin=0.25, horizon_months=12, discount_rate=0.1, model="retention")
    values = lifetime_values(_history(), config)
    # Both bought the year before, one of them again: r = 0.5. Margin 0.25 * 200 = 50 a year;
    # one year ahead: 50 * 0.5 / 1.1 = 22.73. To date: 0.25 * 300 = 75.
    assert values.to_date.tolist() == pytest.approx([75.0, 0.0])
    assert values.future.tolist() == pytest.approx([22.7273, 0.0], abs=1e-3)


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="CLV_MODEL"):
        ValueConfig(model="magic")


def test_retention_formula_when_everyone_stays_and_nothing_is_discounted() -> None:
    # r = 1, d = 0: each of the 3 years is worth the full margin (the closed form would divide by 0).
    assert retention_value(100.0, 1.0, 0.0, 3) == pytest.approx(300.0)
