"""Synthetic purchase histories for the value and scoring benchmarks, from a stated generative process.

The demo shop (bot/demo/seed.py) has 240 customers and 1,200 orders: enough to show every screen,
too few to tell two value models apart or to measure scoring at scale. This draws a larger base:

- customer i arrives on a day uniform over the history (one acquisition cohort per month, evenly);
- buys at the arrival and then as a Poisson process with rate lam_i ~ Gamma(shape 0.8, mean 0.5
  purchases a month): most customers buy rarely, a few often;
- stays for a lifetime tau_i ~ Exponential(mu_i), mu_i ~ Gamma(shape 1.2, mean 1 / 18 months): some
  leave after weeks, some stay for years (Pareto/NBD's dropout, not BG/NBD's, so neither value model
  is handed its own assumptions);
- spends per order Gamma(shape 4, mean m_i) with m_i ~ EUR 25 + Gamma(shape 3, mean EUR 45);
- 4.5% of orders are cancelled and 6% returned (as in the demo shop), which are not purchases.

Everything comes from `numpy.random.default_rng(seed)`: the same arguments give the same orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from bot.crm.scoring import TIER_INDEX, tier_of
from bot.crm.value import History

DAYS_PER_MONTH = 365.0 / 12
CANCELLED_SHARE = 0.045
RETURNED_SHARE = 0.06


@dataclass(frozen=True)
class Orders:
    """Orders as arrays: customer index, day (0 = the first day of the history), amount, purchase or not."""

    customer: NDArray[np.int64]
    day: NDArray[np.int64]
    amount: NDArray[np.float64]
    purchase: NDArray[np.bool_]  # False for cancelled and returned orders
    customers: int
    days: int


def generate(customers: int, days: int, seed: int = 11, rate_per_month: float = 0.5) -> Orders:
    """Draw a base of `customers` over `days` days by the process in the module docstring."""
    rng = np.random.default_rng(seed)
    arrival = rng.uniform(0, days, customers)
    lam = rng.gamma(0.8, rate_per_month / 0.8, customers) / DAYS_PER_MONTH  # purchases a day
    mu = rng.gamma(1.2, (1 / 18) / 1.2, customers) / DAYS_PER_MONTH  # dropouts a day
    lifetime = rng.exponential(1 / mu)
    end = np.minimum(arrival + lifetime, days)
    repeats = rng.poisson(lam * (end - arrival))
    counts = 1 + repeats
    who = np.repeat(np.arange(customers), counts)
    first = np.zeros(len(who), dtype=bool)
    first[np.concatenate(([0], np.cumsum(counts)[:-1]))] = True
    start, stop = arrival[who], end[who]
    when = np.where(first, start, start + rng.uniform(0, 1, len(who)) * (stop - start))
    mean_spend = 25 + rng.gamma(3.0, 45 / 3.0, customers)
    amount = np.round(rng.gamma(4.0, mean_spend[who] / 4.0), 2) + 0.01
    roll = rng.uniform(0, 1, len(who))
    order = np.lexsort((who, when))  # by time, as order numbers would be
    return Orders(
        customer=who[order].astype(np.int64),
        day=np.floor(when[order]).astype(np.int64),
        amount=amount[order],
        purchase=(roll >= CANCELLED_SHARE + RETURNED_SHARE)[order],
        customers=customers,
        days=days,
    )


def history(orders: Orders, cutoff: int) -> History:
    """What the value models would read on day `cutoff` (orders before it only), per customer."""
    keep = orders.purchase & (orders.day < cutoff)
    who, day, amount = orders.customer[keep], orders.day[keep], orders.amount[keep]
    n = orders.customers
    ago = cutoff - day
    count = np.bincount(who, minlength=n)
    spend = np.bincount(who, weights=amount, minlength=n).astype(np.float64)
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    np.fmax.at(first, who, ago.astype(float))
    np.fmin.at(last, who, ago.astype(float))
    year = ago <= 365
    prior = (ago > 365) & (ago <= 730)
    count_365 = np.bincount(who[year], minlength=n)
    spend_365 = np.bincount(who[year], weights=amount[year], minlength=n).astype(np.float64)
    count_prior = np.bincount(who[prior], minlength=n)
    spend_prior = np.bincount(who[prior], weights=amount[prior], minlength=n).astype(np.float64)
    return History(
        purchases=count,
        spend=spend,
        first_days_ago=np.nan_to_num(first),
        last_days_ago=np.nan_to_num(last),
        spend_365=spend_365,
        bought_365=count_365 > 0,
        bought_prior_365=count_prior > 0,
        tier_prior=_tiers(count_prior, spend_prior),
        tier_now=_tiers(count_365, spend_365),
    )


def _tiers(counts: NDArray[np.int64], spend: NDArray[np.float64]) -> NDArray[np.int64]:
    return np.array(
        [TIER_INDEX[tier_of(int(c), Decimal(f"{s:.2f}"))] for c, s in zip(counts, spend, strict=True)],
        dtype=np.int64,
    )


def holdout(orders: Orders, cutoff: int, length: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each customer's purchases and spend in the `length` days from `cutoff` on."""
    keep = orders.purchase & (orders.day >= cutoff) & (orders.day < cutoff + length)
    n = orders.customers
    return (
        np.bincount(orders.customer[keep], minlength=n).astype(float),
        np.bincount(orders.customer[keep], weights=orders.amount[keep], minlength=n).astype(np.float64),
    )
