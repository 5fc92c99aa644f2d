"""Customer lifetime value: what a relationship is worth to date and over the next months, discounted.

CRM practice defines lifetime value as the discounted margin a customer will bring over the whole
relationship, and customer equity as its sum over the base. Two models predict the future part;
`CLV_MODEL` chooses one (the README says why the default won, benchmarks/clv.py measures both):

- **retention** (the textbook formula): a customer worth margin ``m`` a year, kept each year with
  probability ``r`` and discounted at ``d`` a year, is worth ``m * r / (1 + d - r)`` over an endless
  relationship; over a horizon of ``H`` years the sum stops, which multiplies that by
  ``1 - (r / (1 + d)) ** H``. ``m`` is the margin on the last 365 days' purchases, ``r`` the share of
  the customer's segment (value tier a year earlier) who bought again in the following year.
- **bgnbd** (buy till you die): purchases follow the BG/NBD model (Fader, Hardie & Lee 2005) and spend
  per purchase the Gamma-Gamma model (Fader & Hardie 2013), both fitted by maximum likelihood on the
  whole base. Future value = expected purchases in each month of the horizon x expected spend per
  purchase x margin, each month discounted.

Value to date is the margin on every purchase so far (orders neither cancelled nor returned).
Everything here is plain numpy on arrays of customers; the database side is in bot/crm/scoring.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

from bot.settings import Settings

MODELS = ("bgnbd", "retention")
WEEKS_PER_YEAR = 365.0 / 7.0
Array = NDArray[np.float64]


@dataclass(frozen=True)
class ValueConfig:
    """The settings the value rule reads (CLV_MARGIN, CLV_HORIZON_MONTHS, CLV_DISCOUNT_RATE, CLV_MODEL)."""

    margin: float = 0.3
    horizon_months: int = 36
    discount_rate: float = 0.10  # a year
    model: str = "bgnbd"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"CLV_MODEL must be one of {', '.join(MODELS)}, not {self.model!r}")
        if not 0 < self.margin <= 1:
            raise ValueError("CLV_MARGIN is a share of the price: more than 0, at most 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> ValueConfig:
        return cls(
            settings.clv_margin, settings.clv_horizon_months, settings.clv_discount_rate, settings.clv_model
        )


# --- the retention formula -----------------------------------------------------------------------


def retention_value(
    annual_margin: Array | float, retention: Array | float, discount: float, years: float
) -> Array:
    """Discounted margin of the next `years` years: sum over t=1..H of m * r^t / (1 + d)^t.

    With `years` = inf this is the practice's m * r / (1 + d - r)."""
    m = np.asarray(annual_margin, dtype=float)
    r = np.asarray(retention, dtype=float)
    kept = r / (1.0 + discount)
    tail = 0.0 if np.isinf(years) else kept**years
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = m * r / (1.0 + discount - r) * (1.0 - tail)
    # Kept for sure and no discount (r = 1 + d): every year is worth m, the sum is m * H.
    return np.where(np.isclose(kept, 1.0), m * years, closed)


def segment_retention(
    segment_before: NDArray[np.int_],
    bought_before: NDArray[np.bool_],
    bought_after: NDArray[np.bool_],
    segments: int,
) -> Array:
    """Per segment, the share of customers who bought in one year and bought again in the next.

    A segment nobody bought in gets the base's overall share (no evidence of its own)."""
    base = bought_after[bought_before].mean() if bought_before.any() else 0.0
    shares = np.full(segments, base, dtype=float)
    for s in range(segments):
        who = bought_before & (segment_before == s)
        if who.any():
            shares[s] = bought_after[who].mean()
    return shares


FIT_SAMPLE = 20_000


def _sample(*columns: Array) -> tuple[Array, ...]:
    """At most FIT_SAMPLE rows of the columns, the same rows of each, drawn with a fixed seed."""
    if len(columns[0]) <= FIT_SAMPLE:
        return columns
    rows = np.random.default_rng(0).choice(len(columns[0]), FIT_SAMPLE, replace=False)
    return tuple(column[rows] for column in columns)


# --- BG/NBD --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters: purchase rates ~ Gamma(r, alpha), dropout after a purchase ~ Beta(a, b).

    Time is in weeks: x repeat purchases, the last at t_x weeks after the first, observed for T weeks."""

    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: Array, t_x: Array, T: Array) -> Array:
        """Each customer's log-likelihood, Fader, Hardie & Lee (2005) equation 6."""
        return _bgnbd_ll((self.r, self.alpha, self.a, self.b), x, t_x, T)

    def p_alive(self, x: Array, t_x: Array, T: Array) -> Array:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        odds = np.where(
            x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0
        )
        return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float | Array, x: Array, t_x: Array, T: Array) -> Array:
        """Expected purchases in the next `t` weeks given the history (FHL 2005 equation 10)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        t = np.asarray(t, dtype=float)
        z = t / (alpha + T + t)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        body = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        odds = np.where(
            x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0
        )
        return head * body / (1.0 + odds)

    @classmethod
    def fit(cls, x: Array, t_x: Array, T: Array) -> BgNbd:
        """Maximum likelihood (L-BFGS-B on log parameters, which keeps them positive); customers with the
        same (x, t_x, T) are counted once with a weight. Over FIT_SAMPLE customers a seeded sample is
        fitted: four parameters are pinned down long before that, and the fit stays a few seconds."""
        x, t_x, T = _sample(x, t_x, T)
        keys, weights = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
        ux, ut, uT = keys[:, 0], keys[:, 1], keys[:, 2]

        def loss(log_params: Array) -> float:
            value = -float(np.dot(weights, _bgnbd_ll(np.exp(log_params), ux, ut, uT)))
            return value if np.isfinite(value) else 1e300

        start = np.log([1.0, max(float(np.mean(T)), 1.0), 1.0, 2.0])
        best = optimize.minimize(loss, start, method="L-BFGS-B")
        r, alpha, a, b = np.exp(best.x)
        return cls(float(r), float(alpha), float(a), float(b))


def _bgnbd_ll(params: Array | tuple[float, ...], x: Array, t_x: Array, T: Array) -> Array:
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf
        )
    return a1 + a2 + np.logaddexp(a3, a4)


# --- Gamma-Gamma ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend model: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float

    def log_likelihood(self, x: Array, mean_spend: Array) -> Array:
        return _gg_ll((self.p, self.q, self.gamma), x, mean_spend)

    def expected_spend(self, x: Array, mean_spend: Array) -> Array:
        """Expected spend per purchase given x purchases averaging mean_spend (x = 0: the base's mean)."""
        p, q, g = self.p, self.q, self.gamma
        return (p * (g + x * mean_spend)) / (p * x + q - 1)

    @classmethod
    def fit(cls, x: Array, mean_spend: Array) -> GammaGamma:
        keep = (x > 0) & (mean_spend > 0)
        x, m = _sample(x[keep], mean_spend[keep])

        def loss(log_params: Array) -> float:
            value = -float(np.sum(_gg_ll(np.exp(log_params), x, m)))
            return value if np.isfinite(value) else 1e300

        mean = float(np.mean(m)) if m.size else 1.0
        start = np.log([2.0, 3.0, mean])
        best = optimize.minimize(loss, start, method="L-BFGS-B")
        p, q, g = np.exp(best.x)
        return cls(float(p), float(q), float(g))


def _gg_ll(params: Array | tuple[float, ...], x: Array, m: Array) -> Array:
    p, q, g = params
    return (
        special.gammaln(p * x + q)
        - special.gammaln(p * x)
        - special.gammaln(q)
        + q * np.log(g)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(g + m * x)
    )


# --- the base's value ----------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """One row per customer, as arrays: what the value models need from the order history.

    Times in days before `today`: first and last purchase (NaN when none), purchases and spend in
    total, in the last 365 days and in the 365 before them, and the tier (0 regular, 1 key, 2 VIP)
    those earlier purchases would have given."""

    purchases: NDArray[np.int_]
    spend: Array
    first_days_ago: Array
    last_days_ago: Array
    spend_365: Array
    bought_365: NDArray[np.bool_]
    bought_prior_365: NDArray[np.bool_]
    tier_prior: NDArray[np.int_]
    tier_now: NDArray[np.int_]


@dataclass(frozen=True)
class Values:
    to_date: Array
    future: Array


def bgnbd_inputs(h: History) -> tuple[Array, Array, Array, Array]:
    """(x, t_x, T, mean spend per purchase) in weeks; customers without a purchase get zeros."""
    has = h.purchases > 0
    x = np.where(has, h.purchases - 1, 0).astype(float)
    T = np.where(has, h.first_days_ago / 7.0, 0.0)
    t_x = np.where(has, (h.first_days_ago - h.last_days_ago) / 7.0, 0.0)
    mean = np.where(has, h.spend / np.maximum(h.purchases, 1), 0.0)
    return x, t_x, T, mean


def lifetime_values(h: History, config: ValueConfig) -> Values:
    """Value to date and discounted future value over the horizon, per customer, by `config.model`."""
    to_date = config.margin * h.spend
    if config.model == "retention":
        rates = segment_retention(h.tier_prior, h.bought_prior_365, h.bought_365, 3)
        future = retention_value(
            config.margin * h.spend_365, rates[h.tier_now], config.discount_rate, config.horizon_months / 12
        )
        return Values(to_date, future)
    return Values(to_date, bgnbd_future_value(h, config))


def bgnbd_future_value(h: History, config: ValueConfig) -> Array:
    x, t_x, T, mean = bgnbd_inputs(h)
    has = h.purchases > 0
    future = np.zeros(len(x))
    if has.sum() < 10:  # too few buyers to fit a model of the base
        return future
    purchases = BgNbd.fit(x[has], t_x[has], T[has])
    spend = GammaGamma.fit(x[has], mean[has])
    per_purchase = spend.expected_spend(x[has], mean[has])
    future[has] = (
        config.margin * per_purchase * discounted_purchases(purchases, x[has], t_x[has], T[has], config)
    )
    return future


def discounted_purchases(model: BgNbd, x: Array, t_x: Array, T: Array, config: ValueConfig) -> Array:
    """Expected purchases in each month of the horizon, each discounted to today, summed."""
    monthly = (1.0 + config.discount_rate) ** (1.0 / 12) - 1.0
    week_per_month = WEEKS_PER_YEAR / 12
    total = np.zeros(len(x))
    before = np.zeros(len(x))
    for month in range(1, config.horizon_months + 1):
        upto = model.expected_purchases(month * week_per_month, x, t_x, T)
        total += (upto - before) / (1.0 + monthly) ** month
        before = upto
    return total
