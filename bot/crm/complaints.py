"""What a complaint is about, what the customer wants, and how severe it is, read from their words.

Keyword rules, not a model: a support lead can read them, predict them and change them, and every
inference is shown to the customer (category, outcome) or to agents (severity and its reasons).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from bot.crm.models import Order, OrderStatus, Severity

CATEGORIES: dict[str, str] = {
    "product_defect": "a faulty or damaged product",
    "delivery_problem": "a delivery problem",
    "wrong_or_missing_item": "a wrong or missing item",
    "billing": "billing or price",
    "staff_attitude": "how our staff treated you",
    "website_app": "the website or app",
    "other": "something else",
}
OUTCOMES: dict[str, str] = {
    "refund": "a refund",
    "replacement": "a replacement",
    "repair": "a repair",
    "apology": "an apology",
    "information": "an explanation",
}


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")", re.IGNORECASE)


# Ordered by how telling the words are: "charged twice for a late parcel" is a billing complaint.
_CATEGORY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "billing",
        _words(
            r"charged? (?:me )?twice",
            r"double[- ]?charged?",
            r"overcharg",
            r"charg(?:ed|ing) (?:me )?(?:too much|more)",
            r"invoice",
            r"bill(?:ed|ing)?\b",
            r"price",
            r"voucher",
            r"discount",
            r"coupon",
            r"promo code",
            r"refund (?:is )?(?:missing|wrong|short)",
            r"paid (?:twice|too much)",
            r"payment",
        ),
    ),
    (
        "wrong_or_missing_item",
        _words(
            r"wrong (?:item|size|colou?r|product|one|thing|model)",
            r"not what i ordered",
            r"missing",
            r"(?:item|piece|part)s? (?:was |were |is |are )?(?:not|never) (?:in|included)",
            r"only (?:got|received) (?:one|1|half)",
            r"sent (?:me )?the wrong",
            r"incomplete",
            r"different (?:item|product|colou?r|size)",
        ),
    ),
    (
        "product_defect",
        _words(
            r"caught fire",
            r"overheat",
            r"melt",
            r"burn",
            r"broken",
            r"broke\b",
            r"faulty",
            r"defect",
            r"crack",
            r"damaged",
            r"doesn'?t work",
            r"does not work",
            r"stopped working",
            r"not working",
            r"leak",
            r"rust",
            r"torn",
            r"ripped",
            r"snapp",
            r"dent",
            r"falling apart",
            r"fell apart",
            r"poor quality",
            r"bad quality",
            r"scratch",
            r"wobbl",
            r"won'?t (?:light|turn on|close|open)",
        ),
    ),
    (
        "delivery_problem",
        _words(
            r"late\b",
            r"delay",
            r"never (?:arrived|came|got|received)",
            r"hasn'?t (?:arrived|come)",
            r"not (?:arrived|delivered)",
            r"still (?:waiting|not here)",
            r"courier",
            r"driver",
            r"deliver",
            r"parcel",
            r"package",
            r"left (?:it )?outside",
            r"shipping",
            r"tracking",
            r"lost",
        ),
    ),
    (
        "staff_attitude",
        _words(
            r"rude",
            r"impolite",
            r"unhelpful",
            r"attitude",
            r"nobody (?:answers|replies|replied|got back)",
            r"no one (?:answers|replies|replied|got back)",
            r"ignored",
            r"hung up",
            r"customer service",
            r"your (?:staff|agent|colleague|support)",
            r"(?:agent|employee|staff) (?:was|were)",
        ),
    ),
    (
        "website_app",
        _words(
            r"website",
            r"web ?site",
            r"\bapp\b",
            r"checkout",
            r"log ?in",
            r"password",
            r"page",
            r"crash",
            r"error message",
            r"\bsite\b",
            r"can'?t (?:sign|log)",
        ),
    ),
)
_OUTCOME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "refund",
        _words(r"refund", r"money back", r"reimburs", r"pay (?:me )?back", r"compensat", r"credit (?:my|me)"),
    ),
    (
        "replacement",
        _words(
            r"replace",
            r"new one",
            r"another one",
            r"exchange",
            r"send (?:me )?(?:a|the) (?:right|correct|new)",
            # "just send the cushion that's missing", "send me the rest"
            r"send (?:me )?(?:the |my |a )?(?:\w+ ){0,3}(?:that'?s |which is |that is )?missing",
            r"send (?:me )?(?:the )?(?:rest|missing)",
            r"swap",
        ),
    ),
    ("repair", _words(r"repair", r"fix (?:it|this|the)", r"mend", r"spare part", r"technician")),
    (
        "apology",
        _words(r"apolog", r"sorry from", r"say sorry", r"just (?:want|wanted) (?:you )?to know", r"feedback"),
    ),
    (
        "information",
        _words(
            r"explain",
            r"explanation",
            r"information",
            r"(?:want|need) to know",
            r"tell me (?:why|what|when)",
            r"an answer",
        ),
    ),
)

# Harm, safety, fraud or legal threats: a person should look at it now.
_SEVERE = _words(
    r"injur",
    r"hurt (?:me|my|him|her|them|someone|us)",
    r"hospital",
    r"a&e",
    r"burn(?:ed|t|s)? (?:me|my|him|her|his|them|us|our)",
    r"caught fire",
    r"on fire",
    r"set fire",
    r"explod",
    r"electric shock",
    r"shocked me",
    r"unsafe",
    r"dangerous",
    r"safety",
    r"fraud",
    r"scam",
    r"stole",
    r"lawyer",
    r"solicitor",
    r"legal action",
    r"sue\b",
    r"suing",
    r"court",
    r"police",
    r"trading standards",
    r"consumer protection",
    r"chargeback",
    r"allergic",
)
# Anger, repeated contact, money lost: worse than a routine case.
_SERIOUS = _words(
    r"unacceptable",
    r"disgust",
    r"furious",
    r"outrag",
    r"worst",
    r"ridiculous",
    r"appalling",
    r"terrible",
    r"horrible",
    r"never again",
    r"fed up",
    r"third time",
    r"(?:2nd|second|3rd|third|again and again|several|many) times?",
    r"again\b",
    r"still (?:no|not|waiting|nothing)",
    r"nobody",
    r"no one",
    r"weeks",
    r"charged? (?:me )?twice",
    r"double[- ]?charged?",
    r"never (?:arrived|came)",
    r"wtf",
    r"cancel my account",
    r"leave a review",
)
# An order this large makes any failure hurt more.
LARGE_ORDER_EUR = Decimal("300")
LONG_DELAY_DAYS = 7


@dataclass(frozen=True)
class Assessment:
    severity: Severity
    reasons: list[str] = field(default_factory=list)


def infer_category(text: str) -> str | None:
    """The first category whose words appear, or None when none do."""
    for category, pattern in _CATEGORY_RULES:
        if pattern.search(text or ""):
            return category
    return None


def infer_outcome(text: str) -> str | None:
    for outcome, pattern in _OUTCOME_RULES:
        if pattern.search(text or ""):
            return outcome
    return None


def parse_category(text: str) -> str | None:
    """A category from the customer's answer: a button payload, a label or words that point to one."""
    value = (text or "").strip().lower()
    if value in CATEGORIES:
        return value
    for key, label in CATEGORIES.items():
        if value and (value == label or value in (key.replace("_", " "), label.removeprefix("a "))):
            return key
    if re.fullmatch(r"(?:something )?else|other|none of (?:these|them|those)", value):
        return "other"
    return infer_category(value)


def parse_outcome(text: str) -> str | None:
    value = (text or "").strip().lower()
    if value in OUTCOMES:
        return value
    return infer_outcome(value)


def _is_shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.7


def assess(text: str, order: Order | None = None, today: date | None = None) -> Assessment:
    """Severity from the words, raised one step for a large order or a long delay."""
    reasons: list[str] = []
    severe = _SEVERE.search(text or "")
    if severe:
        return Assessment(Severity.HIGH, [f"words: {severe.group(0).lower()!r}"])
    level = 0
    serious = _SERIOUS.search(text or "")
    if serious:
        level = 1
        reasons.append(f"words: {serious.group(0).lower()!r}")
    elif _is_shouting(text or ""):
        level = 1
        reasons.append("written in capitals")
    if order is not None:
        if order.total >= LARGE_ORDER_EUR:
            level += 1
            reasons.append(f"order total {order.total} {order.currency}")
        shipment = order.shipments[-1] if order.shipments else None
        if (
            order.status is OrderStatus.DELAYED
            and shipment is not None
            and shipment.promised_date is not None
            and today is not None
            and (today - shipment.promised_date).days > LONG_DELAY_DAYS
        ):
            level += 1
            reasons.append(f"{(today - shipment.promised_date).days} days late")
    return Assessment((Severity.LOW, Severity.MEDIUM, Severity.HIGH)[min(level, 2)], reasons)


def is_descriptive(text: str) -> bool:
    """Whether the opening message already says what happened ("my tent arrived torn"), rather than
    only that the customer wants to complain ("I want to make a complaint")."""
    words = re.findall(r"[A-Za-z']+", text or "")
    bare = re.fullmatch(
        r"\W*(?:i\s+)?(?:would like|'?d like|want|wanna|need|have|wish)?\s*(?:to\s+)?"
        r"(?:make|file|raise|lodge|log|submit|do)?\s*"
        r"(?:a\s+)?(?:formal\s+)?complain(?:t|ts)?(?:\s+(?:please|pls|now))?\W*",
        (text or "").strip(),
        re.IGNORECASE,
    )
    if bare is not None:
        return False
    return len(words) >= 9 or (len(words) >= 3 and infer_category(text) is not None)
