"""Deterministic demo data: an outdoor & home shop's customers, two years of orders and shipments, agents."""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.crm import sla
from bot.crm.models import (
    Agent,
    AgentRole,
    Base,
    Customer,
    Order,
    OrderItem,
    OrderStatus,
    Shipment,
    ShipmentEvent,
)
from bot.crm.scoring import rescore_all
from bot.demo.replies import seed_saved_replies
from bot.demo.tickets import seed_showcase_tickets

# Any fixed number will do; changing it changes every generated customer and order.
SEED = 20_240_611
CUSTOMER_COUNT = 240
ORDER_COUNT = 1_200
HISTORY_DAYS = 730
FIRST_ORDER_NUMBER = 100_001
WAREHOUSE = "Kassel, DE"

DEMO_PASSWORD_LEAD = "kefu-lead-demo"
DEMO_PASSWORD_AGENT = "kefu-agent-demo"
# (name, e-mail, password, role) of the console accounts every demo database gets.
_DEMO_AGENTS: tuple[tuple[str, str, str, AgentRole], ...] = (
    ("Lena Lead", "lead@kefu.example", DEMO_PASSWORD_LEAD, AgentRole.LEAD),
    # A second lead: an article's author cannot approve it, so reviews need two.
    ("Rui Reviewer", "rui@kefu.example", DEMO_PASSWORD_LEAD, AgentRole.LEAD),
    ("Ada Agent", "ada@kefu.example", DEMO_PASSWORD_AGENT, AgentRole.AGENT),
    ("Sam Agent", "sam@kefu.example", DEMO_PASSWORD_AGENT, AgentRole.AGENT),
)
# (e-mail, password, role) for `make run` to print.
DEMO_LOGINS: list[tuple[str, str, str]] = [
    (email, password, role.value) for _name, email, password, role in _DEMO_AGENTS
]

S = OrderStatus  # the tables below read better with a short name


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: Decimal


CATALOGUE: tuple[Product, ...] = tuple(
    Product(sku, name, Decimal(price))
    for sku, name, price in (
        ("HT-LAN-01", "Fjordlight Solar Lantern", "24.90"),
        ("HT-LAN-02", "Emberglow Outdoor String Lights 10 m", "19.95"),
        ("HT-CHR-01", "Birchwood Folding Chair", "49.00"),
        ("HT-TBL-01", "Alder Balcony Table", "89.00"),
        ("HT-HAM-01", "Driftline Cotton Hammock", "64.50"),
        ("HT-BBQ-01", "Kettleforge Charcoal Grill 47 cm", "129.00"),
        ("HT-BBQ-02", "Kettleforge Grill Cover", "22.90"),
        ("HT-PLT-01", "Terracotta Herb Planter Set of 3", "29.90"),
        ("HT-PLT-02", "Self-Watering Window Box 60 cm", "34.50"),
        ("HT-TOL-01", "Greenhand Pruning Shears", "18.95"),
        ("HT-TOL-02", "Greenhand Garden Kneeler", "27.00"),
        ("HT-HOS-01", "Coilflow Expandable Hose 15 m", "39.90"),
        ("HT-CUS-01", "Weatherproof Seat Cushion", "21.50"),
        ("HT-RUG-01", "Tidewater Outdoor Rug 160x230", "79.00"),
        ("HT-UMB-01", "Sunshade Parasol 2.7 m", "119.00"),
        ("HT-FIR-01", "Hearthstone Fire Pit 60 cm", "149.00"),
        ("HT-BRD-01", "Wren Cedar Bird Feeder", "16.90"),
        ("HT-CAN-01", "Pinecrest Scented Candle", "12.90"),
        ("HT-THR-01", "Heathermoor Wool Throw", "59.00"),
        ("HT-MUG-01", "Campfire Enamel Mug Set of 4", "26.00"),
        ("HT-PIC-01", "Meadow Picnic Basket for 4", "69.00"),
        ("HT-COL-01", "Glacier Cool Box 28 l", "54.90"),
        ("HT-TNT-01", "Ridgeway 2-Person Tent", "189.00"),
        ("HT-SLP-01", "Ridgeway 3-Season Sleeping Bag", "84.00"),
        ("HT-MAT-01", "Coir Doormat Welcome Home", "24.00"),
    )
)
_PRODUCTS = {product.sku: product for product in CATALOGUE}


@dataclass(frozen=True)
class _Country:
    code: str
    name: str
    weight: int
    phone_prefixes: tuple[str, ...]
    phone_digits: int
    # (city, postcode prefix); the postcode format depends on the country.
    cities: tuple[tuple[str, str], ...]
    streets: tuple[str, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    carriers: tuple[tuple[str, int], ...]
    # Sorting centres a parcel passes in this country when it comes from our German warehouse.
    import_hubs: tuple[str, ...]
    transit_days: tuple[int, int]


_DE_FIRST = (
    "Lukas", "Anna", "Leon", "Marie", "Felix", "Sophie", "Paul", "Laura", "Maximilian", "Lea", "Elias",
    "Hannah", "Tim", "Julia", "Moritz", "Clara", "Niklas", "Finn", "Emma", "Jan", "Katharina", "Tobias",
    "Sarah", "Florian", "Johanna", "Ayşe", "Mehmet", "Dimitri", "Olga",
)  # fmt: skip
_DE_LAST = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Hoffmann", "Schulz", "Koch",
    "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Braun", "Zimmermann", "Krüger",
    "Hartmann", "Lange", "Werner", "Krause", "Lehmann", "Köhler", "Vogel", "Yılmaz", "Demir", "Nowak",
)  # fmt: skip

COUNTRIES: tuple[_Country, ...] = (
    _Country(
        "DE", "Germany", 50, ("151", "152", "157", "160", "170", "176"), 8,
        (("Berlin", "10"), ("Hamburg", "20"), ("München", "80"), ("Köln", "50"), ("Frankfurt am Main", "60"),
         ("Leipzig", "04"), ("Stuttgart", "70"), ("Dresden", "01"), ("Bremen", "28"), ("Hannover", "30"),
         ("Nürnberg", "90"), ("Münster", "48")),
        ("Lindenstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Am Mühlbach", "Birkenallee",
         "Goethestraße", "Rosenweg", "Hauptstraße", "Eichendorffweg"),
        _DE_FIRST, _DE_LAST,
        (("DHL", 45), ("DPD", 20), ("GLS", 15), ("UPS", 20)),
        (), (1, 2),
    ),
    _Country(
        "NL", "Netherlands", 22, ("6",), 8,
        (("Amsterdam", "10"), ("Rotterdam", "30"), ("Utrecht", "35"), ("Den Haag", "25"), ("Eindhoven", "56"),
         ("Groningen", "97")),
        ("Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsweg", "Beukenlaan", "Wilhelminastraat",
         "Schoolstraat", "Julianalaan"),
        ("Daan", "Sanne", "Sem", "Lotte", "Lars", "Fleur", "Bram", "Iris", "Thijs", "Eva", "Ruben", "Noor",
         "Jesse", "Femke", "Milan", "Anouk", "Youssef", "Fatima"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit", "Meijer",
         "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "El Amrani"),
        (("PostNL", 50), ("DHL", 25), ("DPD", 15), ("GLS", 10)),
        ("Nieuwegein", "Amsterdam"), (2, 3),
    ),
    _Country(
        # +44 7700 900xxx is the range Ofcom keeps for fiction, so no real phone is ever listed.
        "GB", "United Kingdom", 16, ("7700900",), 3,
        (("London", "SE"), ("Manchester", "M"), ("Bristol", "BS"), ("Leeds", "LS"), ("Edinburgh", "EH"),
         ("Birmingham", "B")),
        ("High Street", "Station Road", "Mill Lane", "Church Street", "Park Avenue", "Victoria Road",
         "The Crescent", "Orchard Close"),
        ("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Jack", "Emily", "Charlie", "Sophia", "Thomas",
         "Grace", "James", "Lily", "William", "Freya", "Priya", "Arjun", "Aisha", "Mohammed"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Evans", "Roberts",
         "Walker", "Wright", "Patel", "Khan", "Hughes", "Green", "Clarke", "O'Brien"),
        (("UPS", 40), ("DHL", 35), ("DPD", 25)),
        ("East Midlands", "Coventry"), (3, 4),
    ),
    _Country(
        "AT", "Austria", 7, ("664", "650", "676"), 7,
        (("Wien", "1"), ("Graz", "8"), ("Linz", "4"), ("Salzburg", "5"), ("Innsbruck", "6")),
        ("Hauptstraße", "Schulgasse", "Feldgasse", "Lindengasse", "Kirchenweg", "Mühlweg"),
        ("Florian", "Katharina", "Lukas", "Anna", "Sebastian", "Theresa", "Matthias", "Magdalena"),
        ("Gruber", "Huber", "Bauer", "Wagner", "Pichler", "Steiner", "Moser", "Mayer", "Hofer", "Leitner"),
        (("DPD", 40), ("GLS", 30), ("DHL", 30)),
        ("Wien",), (2, 3),
    ),
    _Country(
        "PT", "Portugal", 5, ("91", "92", "93", "96"), 7,
        (("Lisboa", "1"), ("Porto", "4"), ("Braga", "4"), ("Coimbra", "3"), ("Faro", "8")),
        ("Rua das Flores", "Rua do Sol", "Rua Nova", "Travessa do Carmo", "Rua da Alegria", "Rua do Pinhal"),
        ("João", "Maria", "Tiago", "Inês", "Pedro", "Beatriz", "Rui", "Catarina", "Miguel", "Sofia"),
        ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Almeida",
         "Carvalho"),
        (("DHL", 40), ("DPD", 35), ("UPS", 25)),
        ("Lisboa", "Porto"), (3, 5),
    ),
)  # fmt: skip
_COUNTRY_BY_CODE = {country.code: country for country in COUNTRIES}
_PHONE_CODES = {"DE": "+49", "NL": "+31", "GB": "+44", "AT": "+43", "PT": "+351"}
# Parcels leave the warehouse through one of these German sorting centres.
_ORIGIN_HUBS = ("Hannover", "Leipzig", "Bad Hersfeld", "Dortmund", "Nürnberg")

_LABEL = "Label created, awaiting pick-up"
_AT_HUB = "Arrived at the sorting centre"
_AT_DEPOT = "Arrived at the delivery depot"
_OUT = "Out for delivery"
_CLEARED = "Import customs clearance completed"
_RETURN_RECEIVED = "Return received at the warehouse"
_HUB_DELAYS = (
    "Delayed: severe weather is affecting deliveries in the region",
    "Delayed: high parcel volume at the sorting centre",
    "Delayed: the parcel missed its scheduled line-haul connection",
    "Delayed: vehicle breakdown, the parcel continues on the next vehicle",
    "Delayed: damaged label, the parcel is being re-labelled",
)
_CUSTOMS_DELAY = "Held at customs: awaiting import clearance"
_FAILED_ATTEMPT = "Delivery attempt failed: recipient not at home, next attempt on the next working day"
_DELIVERED = (
    "Delivered: handed to the recipient",
    "Delivered: left with a neighbour",
    "Delivered: placed in the recipient's parcel locker",
    "Delivered: left in the agreed safe place",
)


def _departed(country: str | None = None) -> str:
    if country in ("United Kingdom", "Netherlands"):
        country = f"the {country}"
    return f"Departed the sorting centre for {country}" if country else "Departed the sorting centre"


# The showcase, listed in the README: fixed people and orders a demo can walk through.
# Events are (days before today, "HH:MM" UTC, status, location, description).
_ShowcaseEvent = tuple[int, str, OrderStatus, str, str]


@dataclass(frozen=True)
class _ShowcaseOrder:
    number: str
    status: OrderStatus
    placed: tuple[int, str]
    items: tuple[tuple[str, int], ...]
    carrier: str | None = None
    tracking_number: str | None = None
    promised_in_days: int | None = None  # relative to today; negative when the promise is past
    events: tuple[_ShowcaseEvent, ...] = ()


@dataclass(frozen=True)
class _ShowcaseCustomer:
    name: str
    email: str
    phone: str
    address: str
    created_days_ago: int
    orders: tuple[_ShowcaseOrder, ...]


SHOWCASE: tuple[_ShowcaseCustomer, ...] = (
    _ShowcaseCustomer(
        "Ana Souza", "ana.souza@example.com", "+351912345678",
        "Rua das Flores 28, 1200-195 Lisboa, Portugal", 410,
        (
            _ShowcaseOrder(
                "100001", S.IN_TRANSIT, (3, "09:14"), (("HT-LAN-01", 2), ("HT-THR-01", 1)),
                "DHL", "00340434298754310062", 1,
                (
                    (3, "13:02", S.PROCESSING, WAREHOUSE, _LABEL),
                    (3, "17:45", S.SHIPPED, WAREHOUSE, "Picked up by DHL"),
                    (3, "22:10", S.IN_TRANSIT, "Leipzig, DE", _AT_HUB),
                    (2, "03:40", S.IN_TRANSIT, "Leipzig, DE", _departed("Portugal")),
                    (1, "11:25", S.IN_TRANSIT, "Lisboa, PT", _AT_HUB),
                ),
            ),
            _ShowcaseOrder(
                "100002", S.DELIVERED, (26, "19:40"), (("HT-CHR-01", 2), ("HT-CUS-01", 2)),
                "UPS", "1ZHT3W186841095537", -21,
                (
                    (25, "10:05", S.PROCESSING, WAREHOUSE, _LABEL),
                    (25, "16:30", S.SHIPPED, WAREHOUSE, "Picked up by UPS"),
                    (25, "21:15", S.IN_TRANSIT, "Dortmund, DE", _AT_HUB),
                    (24, "02:50", S.IN_TRANSIT, "Dortmund, DE", _departed("Portugal")),
                    (22, "14:35", S.IN_TRANSIT, "Lisboa, PT", _AT_HUB),
                    (22, "19:10", S.IN_TRANSIT, "Lisboa, PT", _AT_DEPOT),
                    (21, "07:50", S.IN_TRANSIT, "Lisboa, PT", _OUT),
                    (21, "13:12", S.DELIVERED, "Lisboa, PT", "Delivered: handed to the recipient"),
                ),
            ),
            _ShowcaseOrder("100003", S.PROCESSING, (1, "20:47"), (("HT-PLT-01", 1), ("HT-TOL-01", 1))),
        ),
    ),
    _ShowcaseCustomer(
        "Jonas Becker", "jonas.becker@example.com", "+4915123456789",
        "Lindenstraße 14, 50674 Köln, Germany", 215,
        (
            _ShowcaseOrder(
                "100004", S.DELAYED, (5, "08:31"), (("HT-BBQ-01", 1), ("HT-BBQ-02", 1)),
                "DPD", "01505823104472", -3,
                (
                    (5, "11:20", S.PROCESSING, WAREHOUSE, _LABEL),
                    (5, "16:05", S.SHIPPED, WAREHOUSE, "Picked up by DPD"),
                    (5, "23:40", S.IN_TRANSIT, "Hannover, DE", _AT_HUB),
                    (4, "04:10", S.IN_TRANSIT, "Hannover, DE", _departed()),
                    (4, "09:55", S.IN_TRANSIT, "Köln, DE", _AT_DEPOT),
                    (3, "07:15", S.DELAYED, "Köln, DE", _HUB_DELAYS[0]),
                ),
            ),
            _ShowcaseOrder(
                "100005", S.SHIPPED, (2, "12:10"), (("HT-HAM-01", 1),),
                "UPS", "1ZHT3W186804419273", 1,
                (
                    (2, "15:30", S.PROCESSING, WAREHOUSE, _LABEL),
                    (1, "16:45", S.SHIPPED, WAREHOUSE, "Picked up by UPS"),
                ),
            ),
        ),
    ),
    _ShowcaseCustomer(
        "Mei Chen", "mei.chen@example.com", "+447700900123",
        "42 Mill Lane, Manchester M14 5RT, United Kingdom", 320,
        (
            _ShowcaseOrder(
                "100006", S.RETURNED, (38, "18:05"), (("HT-RUG-01", 1),),
                "UPS", "1ZHT3W186804419281", -33,
                (
                    (37, "10:12", S.PROCESSING, WAREHOUSE, _LABEL),
                    (37, "17:20", S.SHIPPED, WAREHOUSE, "Picked up by UPS"),
                    (37, "23:05", S.IN_TRANSIT, "Dortmund, DE", _AT_HUB),
                    (36, "04:30", S.IN_TRANSIT, "Dortmund, DE", _departed("United Kingdom")),
                    (35, "09:40", S.IN_TRANSIT, "East Midlands, GB", _AT_HUB),
                    (35, "15:05", S.IN_TRANSIT, "East Midlands, GB", _CLEARED),
                    (34, "20:30", S.IN_TRANSIT, "Manchester, GB", _AT_DEPOT),
                    (33, "08:05", S.IN_TRANSIT, "Manchester, GB", _OUT),
                    (33, "12:44", S.DELIVERED, "Manchester, GB", "Delivered: handed to the recipient"),
                    (28, "14:30", S.RETURNED, "Manchester, GB", "Return handed in at a UPS Access Point"),
                    (24, "11:02", S.RETURNED, WAREHOUSE, _RETURN_RECEIVED),
                ),
            ),
            _ShowcaseOrder("100007", S.CANCELLED, (12, "21:15"), (("HT-TNT-01", 1),)),
            _ShowcaseOrder(
                "100008", S.DELIVERED, (18, "09:48"), (("HT-CAN-01", 3), ("HT-MUG-01", 1)),
                "DHL", "00340434298754310079", -14,
                (
                    (18, "14:20", S.PROCESSING, WAREHOUSE, _LABEL),
                    (18, "17:55", S.SHIPPED, WAREHOUSE, "Picked up by DHL"),
                    (17, "00:35", S.IN_TRANSIT, "Bad Hersfeld, DE", _AT_HUB),
                    (17, "05:10", S.IN_TRANSIT, "Bad Hersfeld, DE", _departed("United Kingdom")),
                    (16, "10:25", S.IN_TRANSIT, "Coventry, GB", _AT_HUB),
                    (16, "16:40", S.IN_TRANSIT, "Coventry, GB", _CLEARED),
                    (15, "21:15", S.IN_TRANSIT, "Manchester, GB", _AT_DEPOT),
                    (14, "07:40", S.IN_TRANSIT, "Manchester, GB", _OUT),
                    (14, "15:20", S.DELIVERED, "Manchester, GB", "Delivered: left with a neighbour"),
                ),
            ),
        ),
    ),
)  # fmt: skip
SHOWCASE_ORDER_NUMBERS: tuple[str, ...] = tuple(
    order.number for person in SHOWCASE for order in person.orders
)
_SHOWCASE_NAMES = frozenset(person.name for person in SHOWCASE)


@dataclass(frozen=True)
class SeedSummary:
    customers: int
    orders: int
    order_items: int
    shipments: int
    shipment_events: int
    agents: int
    tickets: int = 0
    saved_replies: int = 0
    orders_by_status: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the command line."""
        statuses = ", ".join(f"{count} {status}" for status, count in self.orders_by_status.items())
        return (
            f"{self.customers} customers, {self.orders} orders ({statuses}), {self.order_items} order items, "
            f"{self.shipments} shipments with {self.shipment_events} tracking events, {self.agents} agents, "
            f"{self.tickets} tickets, {self.saved_replies} saved replies"
        )


def database_is_empty(session: Session) -> bool:
    """True when there are no customers, orders or agents: only then may demo data go in."""
    return all(session.scalar(select(model.id).limit(1)) is None for model in (Customer, Order, Agent))


def seed_demo_data(session: Session, today: date, policy: sla.SlaPolicy | None = None) -> SeedSummary:
    """Add the demo shop's customers, orders, shipments and agents; the caller commits.

    Everything is drawn from random.Random(SEED) and placed relative to `today`: the same `today`
    gives the same rows, another `today` the same rows shifted in time. No timestamp reaches `today`
    itself, so the data never lies in the future, whatever the hour. The showcase tickets' due
    times follow `policy` (the shipped default when None).
    """
    if not database_is_empty(session):
        raise ValueError("demo data goes into an empty database only; this one already has data")
    builder = _DemoShop(today)
    customers, orders = builder.build()

    # Bulk INSERTs rather than ORM objects: building and flushing ~14,000 instrumented objects takes
    # several seconds, these statements a fraction of one. Ids come back in the order of the rows.
    customer_ids = _insert_returning_ids(session, Customer, [vars(customer) for customer in customers])
    order_ids = _insert_returning_ids(
        session,
        Order,
        [
            {
                "number": order.number,
                "customer_id": customer_ids[order.customer],
                "status": order.status,
                "placed_at": order.placed_at,
                "total": order.total,
                "currency": "EUR",
                "shipping_address": order.address,
            }
            for order in orders
        ],
    )
    session.execute(
        insert(OrderItem),
        [
            {
                "order_id": order_id,
                "sku": product.sku,
                "name": product.name,
                "quantity": quantity,
                "unit_price": product.price,
            }
            for order_id, order in zip(order_ids, orders, strict=True)
            for product, quantity in order.items
        ],
    )
    shipments = [
        (order_id, order.shipment)
        for order_id, order in zip(order_ids, orders, strict=True)
        if order.shipment is not None
    ]
    shipment_ids = _insert_returning_ids(
        session, Shipment, [shipment.row(order_id) for order_id, shipment in shipments]
    )
    session.execute(
        insert(ShipmentEvent),
        [
            {
                "shipment_id": shipment_id,
                "occurred_at": event.at,
                "status": event.status,
                "location": event.location,
                "description": event.description,
            }
            for shipment_id, (_order_id, shipment) in zip(shipment_ids, shipments, strict=True)
            for event in shipment.events
        ],
    )
    agents = _demo_agents(builder.midnight)
    session.add_all(agents)
    session.flush()
    tickets_made = seed_showcase_tickets(session, builder.midnight, policy or sla.default_policy())
    replies_made = seed_saved_replies(session, agents[0], builder.midnight - timedelta(days=30))
    rescore_all(session, today)

    statuses = Counter(order.status for order in orders)
    return SeedSummary(
        customers=len(customers),
        orders=len(orders),
        order_items=sum(len(order.items) for order in orders),
        shipments=len(shipments),
        shipment_events=sum(len(shipment.events) for _order_id, shipment in shipments),
        agents=len(agents),
        tickets=tickets_made,
        saved_replies=replies_made,
        orders_by_status={status.value: statuses[status] for status in OrderStatus if statuses[status]},
    )


def _insert_returning_ids(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> list[int]:
    statement = insert(model).returning(model.id, sort_by_parameter_order=True)  # type: ignore[attr-defined]
    return list(session.scalars(statement, rows))


def _demo_agents(midnight: datetime) -> list[Agent]:
    hasher = PasswordHasher()
    return [
        Agent(
            name=name,
            email=email,
            password_hash=hasher.hash(password),
            role=role,
            active=True,
            created_at=midnight - timedelta(days=400),
        )
        for name, email, password, role in _DEMO_AGENTS
    ]


@dataclass
class _CustomerRecord:
    name: str
    email: str
    phone: str | None
    created_at: datetime


@dataclass
class _Event:
    at: datetime
    status: OrderStatus
    location: str
    description: str


@dataclass
class _ShipmentRecord:
    carrier: str
    tracking_number: str
    status: OrderStatus
    promised_date: date | None
    events: list[_Event]

    def row(self, order_id: int) -> dict[str, Any]:
        return {
            "order_id": order_id,
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "status": self.status,
            "shipped_at": next((e.at for e in self.events if e.status is S.SHIPPED), None),
            "promised_date": self.promised_date,
            "delivered_at": next((e.at for e in self.events if e.status is S.DELIVERED), None),
        }


@dataclass
class _OrderRecord:
    number: str
    customer: int  # index into the list of customers
    placed_at: datetime
    address: str
    items: list[tuple[Product, int]]
    status: OrderStatus = S.PROCESSING
    shipment: _ShipmentRecord | None = None

    @property
    def total(self) -> Decimal:
        # Shipping is free in the demo shop, so the total is the sum of the lines.
        return sum((product.price * quantity for product, quantity in self.items), Decimal("0.00"))


@dataclass
class _Profile:
    """A generated customer and how they shop: when they joined, stopped, and how often they buy."""

    customer: int  # index into the list of customers
    country: _Country
    city: str
    address: str
    joined_days_ago: int
    last_active_days_ago: int
    weight: float


class _DemoShop:
    """Builds the demo rows; every random draw comes from one generator in a fixed sequence."""

    def __init__(self, today: date) -> None:
        self.rng = random.Random(SEED)
        # All times are placed before the start of `today` (UTC): whole-day offsets from this moment.
        self.midnight = datetime.combine(today, time(0, 0), tzinfo=UTC)
        self.today = today
        self.customers: list[_CustomerRecord] = []
        self.used_emails: set[str] = set()
        self.used_phone_tails: set[str] = set()
        self.used_tracking: set[str] = set()

    def build(self) -> tuple[list[_CustomerRecord], list[_OrderRecord]]:
        orders = self._showcase()
        profiles = [self._profile() for _ in range(CUSTOMER_COUNT - len(self.customers))]
        orders += self._generated_orders(profiles, ORDER_COUNT - len(orders))
        return self.customers, orders

    # --- the showcase ---------------------------------------------------------------------------

    def _showcase(self) -> list[_OrderRecord]:
        orders: list[_OrderRecord] = []
        for person in SHOWCASE:
            created_at = self.midnight - timedelta(days=person.created_days_ago, hours=9, minutes=17)
            self.customers.append(_CustomerRecord(person.name, person.email, person.phone, created_at))
            self.used_emails.add(person.email)
            self.used_phone_tails.add(person.phone[-9:])
            for spec in person.orders:
                order = _OrderRecord(
                    number=spec.number,
                    customer=len(self.customers) - 1,
                    placed_at=self._at(*spec.placed),
                    address=person.address,
                    items=[(_PRODUCTS[sku], quantity) for sku, quantity in spec.items],
                    status=spec.status,
                )
                if spec.carrier and spec.tracking_number:
                    self.used_tracking.add(spec.tracking_number)
                    promised = None
                    if spec.promised_in_days is not None:
                        promised = self.today + timedelta(days=spec.promised_in_days)
                    events = [
                        _Event(self._at(day, hhmm), status, place, text)
                        for day, hhmm, status, place, text in spec.events
                    ]
                    order.shipment = _ShipmentRecord(
                        spec.carrier, spec.tracking_number, spec.status, promised, events
                    )
                orders.append(order)
        return orders

    def _at(self, days_ago: int, hhmm: str) -> datetime:
        hours, minutes = (int(part) for part in hhmm.split(":"))
        return self.midnight - timedelta(days=days_ago) + timedelta(hours=hours, minutes=minutes)

    # --- customers ------------------------------------------------------------------------------

    def _profile(self) -> _Profile:
        rng = self.rng
        country = rng.choices(COUNTRIES, weights=[c.weight for c in COUNTRIES])[0]
        while True:
            name = f"{rng.choice(country.first_names)} {rng.choice(country.last_names)}"
            if name not in _SHOWCASE_NAMES:  # a second "Jonas Becker" would confuse a demo
                break
        city, postcode_prefix = rng.choice(country.cities)
        address = self._address(country, city, postcode_prefix)

        # Some customers joined before the two years of order history; some stopped buying (churn).
        joined = rng.randint(2, HISTORY_DAYS + 90)
        last_active = 1
        if joined > 240 and rng.random() < 0.2:
            last_active = rng.randint(150, joined - 60)
        # A few customers never ordered (prospects); most buy now and then, a few often.
        weight = 0.0 if rng.random() < 0.05 else min(rng.paretovariate(1.5), 12.0)

        email = self._email(name)
        phone = self._phone(country) if rng.random() > 0.08 else None
        created_at = self.midnight - timedelta(days=joined) + timedelta(minutes=rng.randint(420, 1380))
        self.customers.append(_CustomerRecord(name, email, phone, created_at))
        return _Profile(len(self.customers) - 1, country, city, address, joined, last_active, weight)

    def _email(self, name: str) -> str:
        first, _, last = name.partition(" ")
        first, last = _ascii_slug(first), _ascii_slug(last)
        pattern = self.rng.choice(("{f}.{l}", "{f}.{l}", "{f}{l}", "{i}.{l}", "{f}_{l}", "{f}.{l}{n}"))
        local = pattern.format(f=first, l=last, i=first[0], n=self.rng.randint(70, 99))
        email, suffix = f"{local}@example.com", 2
        while email in self.used_emails:
            email, suffix = f"{local}{suffix}@example.com", suffix + 1
        self.used_emails.add(email)
        return email

    def _phone(self, country: _Country) -> str:
        # Verification compares the last nine digits, so those must differ between customers.
        while True:
            prefix = self.rng.choice(country.phone_prefixes)
            digits = "".join(self.rng.choice("0123456789") for _ in range(country.phone_digits))
            phone = f"{_PHONE_CODES[country.code]}{prefix}{digits}"
            if phone[-9:] not in self.used_phone_tails:
                self.used_phone_tails.add(phone[-9:])
                return phone

    def _address(self, country: _Country, city: str, prefix: str) -> str:
        rng = self.rng
        street, number = rng.choice(country.streets), rng.randint(1, 120)
        digits = "".join(rng.choice("0123456789") for _ in range(5))
        letters = "".join(rng.choice("ABDEFGHJLNPRSTUWXYZ") for _ in range(2))
        match country.code:
            case "GB":
                postcode = f"{prefix}{rng.randint(1, 20)} {digits[0]}{letters}"
                return f"{number} {street}, {city} {postcode}, {country.name}"
            case "NL":
                postcode = f"{prefix}{digits[:2]} {letters}"
            case "PT":
                postcode = f"{prefix}{digits[:3]}-{digits[3:5]}{rng.randint(0, 9)}"
            case _:  # DE has five digits, AT four; both start with the city's prefix
                postcode = (prefix + digits)[: 5 if country.code == "DE" else 4]
        return f"{street} {number}, {postcode} {city}, {country.name}"

    # --- orders ---------------------------------------------------------------------------------

    def _generated_orders(self, profiles: list[_Profile], count: int) -> list[_OrderRecord]:
        rng = self.rng
        drafts: list[tuple[int, int, _Profile]] = []  # (days ago, minute of the day, customer)
        for _ in range(count):
            roll = rng.random()
            if roll < 0.06:
                days_ago = rng.randint(1, 10)  # enough recent orders that every in-flight state shows
            elif roll < 0.55:
                days_ago = rng.randint(1, HISTORY_DAYS)
            else:
                # The shop grows: half of the orders lean towards the recent months.
                days_ago = 1 + int((HISTORY_DAYS - 1) * (1 - rng.random() ** 0.5))
            # Only customers who had joined by then (and not yet left) place the order.
            active = [
                p for p in profiles if p.weight and p.last_active_days_ago <= days_ago < p.joined_days_ago
            ]
            if not active:
                active = [p for p in profiles if p.weight and days_ago < p.joined_days_ago]
            profile = rng.choices(active, weights=[p.weight for p in active])[0]
            drafts.append((days_ago, rng.randint(6 * 60, 23 * 60 + 30), profile))

        # Order numbers follow the time the orders were placed, oldest first.
        drafts.sort(key=lambda draft: (-draft[0], draft[1]))
        orders: list[_OrderRecord] = []
        next_number = FIRST_ORDER_NUMBER + len(SHOWCASE_ORDER_NUMBERS)
        for number, (days_ago, minute, profile) in enumerate(drafts, start=next_number):
            placed_at = self.midnight - timedelta(days=days_ago) + timedelta(minutes=minute)
            orders.append(self._order(str(number), placed_at, profile))
        return orders

    def _order(self, number: str, placed_at: datetime, profile: _Profile) -> _OrderRecord:
        rng = self.rng
        line_count = rng.choices((1, 2, 3, 4), weights=(50, 30, 15, 5))[0]
        items = [
            (product, rng.choices((1, 2, 3, 4), weights=(80, 14, 4, 2))[0])
            for product in rng.sample(CATALOGUE, line_count)
        ]
        order = _OrderRecord(number, profile.customer, placed_at, profile.address, items)
        # What will happen to the order; `today` then decides how much of it has happened yet.
        cancelled = rng.random() < 0.045
        returned = rng.random() < 0.06
        label_at = _later(rng, placed_at, 1, 20, 8, 18)
        if cancelled:
            cancel_at = placed_at + (label_at - placed_at) * rng.uniform(0.1, 0.9)
            order.status = S.CANCELLED if cancel_at < self.midnight else S.PROCESSING
            return order

        carriers, weights = zip(*profile.country.carriers, strict=True)
        carrier = rng.choices(carriers, weights=weights)[0]
        events, promised = self._journey(label_at, carrier, profile, returned)
        happened = [event for event in events if event.at < self.midnight]
        if len(happened) <= 1:
            # Only a label so far (or not even that): the customer sees "processing", no parcel yet.
            order.status = S.PROCESSING
            return order
        order.status = happened[-1].status
        if order.status in (S.SHIPPED, S.IN_TRANSIT) and promised < self.today:
            # Moving again after a hold-up, but past the promised day: to the customer it is late.
            order.status = S.DELAYED
        order.shipment = _ShipmentRecord(
            carrier, self._tracking_number(carrier), order.status, promised, happened
        )
        return order

    def _journey(
        self, label_at: datetime, carrier: str, profile: _Profile, returned: bool
    ) -> tuple[list[_Event], date]:
        """The parcel's whole trip as planned, with any delay; returns the events and the promised date."""
        rng, country = self.rng, profile.country
        city = f"{profile.city}, {country.code}"
        hub = f"{rng.choice(_ORIGIN_HUBS)}, DE"
        events = [_Event(label_at, S.PROCESSING, WAREHOUSE, _LABEL)]

        def step(
            status: OrderStatus, location: str, text: str, lo: float, hi: float, start: int = 0, end: int = 24
        ) -> None:
            events.append(_Event(_later(rng, events[-1].at, lo, hi, start, end), status, location, text))

        step(S.SHIPPED, WAREHOUSE, f"Picked up by {carrier}", 2, 8, 14, 19)
        step(S.IN_TRANSIT, hub, _AT_HUB, 3, 8)
        abroad = country.code != "DE"
        step(S.IN_TRANSIT, hub, _departed(country.name if abroad else None), 2, 5)
        customs_index = None
        if abroad:
            import_hub = f"{rng.choice(country.import_hubs)}, {country.code}"
            low, high = country.transit_days
            step(S.IN_TRANSIT, import_hub, _AT_HUB, 12 * low, 12 * high + 12)
            if country.code == "GB":
                customs_index = len(events)
                step(S.IN_TRANSIT, import_hub, _CLEARED, 3, 10)
        step(S.IN_TRANSIT, city, _AT_DEPOT, 4, 12)
        out_index = len(events)
        step(S.IN_TRANSIT, city, _OUT, 6, 14, 7, 10)
        step(S.DELIVERED, city, rng.choice(_DELIVERED), 1, 8, 9, 20)
        promised = (events[-1].at + timedelta(days=rng.choice((0, 0, 1)))).date()

        if rng.random() < 0.12:
            kind = rng.random()
            if kind < 0.25:
                at, description, resume = out_index + 1, _FAILED_ATTEMPT, out_index  # retried next day
            elif customs_index is not None and kind < 0.6:
                at, description, resume = customs_index, _CUSTOMS_DELAY, customs_index
            else:
                at = rng.randint(3, out_index - 1)
                description, resume = rng.choice(_HUB_DELAYS), at
            before = events[:at]
            delay = _Event(
                _later(rng, before[-1].at, 1, 5, 7, 21), S.DELAYED, before[-1].location, description
            )
            days = timedelta(days=1 if description == _FAILED_ATTEMPT else rng.randint(1, 3))
            resumed = [_Event(e.at + days, e.status, e.location, e.description) for e in events[resume:]]
            events = [*before, delay, *resumed]

        if returned:
            step(S.RETURNED, city, f"Return handed in at a {carrier} parcel shop", 72, 21 * 24, 9, 19)
            step(S.RETURNED, WAREHOUSE, _RETURN_RECEIVED, 40, 5 * 24, 8, 17)
        return events, promised

    def _tracking_number(self, carrier: str) -> str:
        rng = self.rng

        def digits(count: int) -> str:
            return "".join(rng.choice("0123456789") for _ in range(count))

        while True:
            match carrier:
                case "DHL":
                    number = f"00340434{digits(12)}"  # DHL Paket's 20-digit parcel numbers
                case "UPS":
                    number = f"1ZHT3W18{rng.choice(('68', '03', '01'))}{digits(8)}"  # 1Z + account + service
                case "DPD":
                    number = f"0{digits(13)}"
                case "GLS":
                    number = digits(11)
                case _:  # PostNL
                    number = f"3SHTRL{digits(9)}"
            if number not in self.used_tracking:
                self.used_tracking.add(number)
                return number


def _later(
    rng: random.Random, after: datetime, min_hours: float, max_hours: float, start: int = 0, end: int = 24
) -> datetime:
    """A moment some hours after `after`, moved into the hours [start, end) when such work happens."""
    moment = after + timedelta(minutes=rng.randint(int(min_hours * 60), int(max_hours * 60)))
    if moment.hour < start:
        moment = moment.replace(hour=start, minute=rng.randint(0, 59))
    elif moment.hour >= end:
        moment = (moment + timedelta(days=1)).replace(hour=start, minute=rng.randint(0, 59))
    return moment


_TRANSLITERATION = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ı": "i", "'": "", " ": ""})


def _ascii_slug(text: str) -> str:
    """Lower-case ASCII for e-mail addresses: "Müller" -> "mueller", "van den Berg" -> "vandenberg"."""
    text = text.lower().translate(_TRANSLITERATION)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
