"""The demo's generated customers: Vietnamese names, mobiles, loans, and the callee each number plays."""

import dataclasses
import datetime as dt
import random

TZ_NAME = "Asia/Ho_Chi_Minh"
GATEWAY = "carrier1"
SEED_QUEUE = "Autocall-Q1"
# The seed's sample import body, word for word: replayed first, then imported again to be called.
SEED_IMPORT = {
    "queue_code": SEED_QUEUE,
    "template": "IVR-1",
    "concurrent_call": 5,
    "max_recall_count": 3,
    "min_recall_duration": 3,
    "customers": [
        {
            "id": "TEL4VN_Test",
            "mobiles": ["0982596021"],
            "contract_number": "HD123456",
            "upcoming_due_date": "2021-07-13",
            "upcoming_amount": 5000000,
            "due_date": "2021-07-13",
            "dpd": 5,
            "number_of_ovd_inst": 6,
            "total_ovd_amount": 3211100,
        }
    ],
}
SEED_REQUESTS = [
    ("POST /queue (import)", "/queue", SEED_IMPORT),
    (
        "POST /queue/dnc",
        "/queue/dnc",
        {"queue_code": SEED_QUEUE, "customers": [{"id": "KH_01"}, {"id": "KH_02"}, {"id": "KH_03"}]},
    ),
    ("POST /queue/stop", "/queue/stop", {"queue_code": SEED_QUEUE}),
    ("POST /queue/start", "/queue/start", {"queue_code": SEED_QUEUE}),
    ("POST /queue/stop (before delete)", "/queue/stop", {"queue_code": SEED_QUEUE}),
    ("POST /queue/delete", "/queue/delete", {"queue_code": SEED_QUEUE}),
    ("POST /queue/stop (error response: unknown queue)", "/queue/stop", {"queue_code": "Autocall-Q404"}),
    (
        "POST /queue (error response: unknown template)",
        "/queue",
        {"queue_code": SEED_QUEUE, "template": "IVR-404", "customers": [{"id": "x", "mobiles": ["0982596021"]}]},
    ),
]
# Generated queues: (code, template, share of the customers).
DEMO_QUEUES = (("DEMO-TRUOC-HAN", "IVR-1", 0.6), ("DEMO-QUA-HAN", "IVR-OVERDUE", 0.4))
DEMO_QUEUE_SETTINGS = {"concurrent_call": 30, "max_recall_count": 2, "min_recall_duration": 5}

# What the callee behind one number does, and how often (weights).
CALLEE_MIX = {
    "listens": 26,  # answers, hears the message, presses nothing
    "hangs_up_mid_message": 8,  # answers, listens a while (long enough to count), hangs up
    "promise_to_pay": 18,  # presses 9 in the menu
    "repeat_then_promise": 5,  # presses 1 (hear again), then 9
    "wants_agent": 7,  # presses 2, is transferred, talks to the agent
    "short_hangup": 8,  # answers and hangs up within seconds: too short, called again
    "busy": 11,
    "no_answer": 10,
    "declined": 5,
    "dead_number": 2,  # the network says the number does not exist
}
# A key is pressed this many simulated seconds into the menu prompt (it interrupts the prompt).
KEY_INTO_MENU = 4.0
MOBILE_PREFIXES = (
    "032",
    "033",
    "034",
    "035",
    "036",
    "037",
    "038",
    "039",
    "070",
    "076",
    "077",
    "078",
    "079",
    "081",
    "082",
    "083",
    "084",
    "085",
    "086",
    "088",
    "089",
    "090",
    "091",
    "093",
    "094",
    "096",
    "097",
    "098",
)
SURNAMES = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
)
MIDDLE_NAMES = ("Văn", "Thị", "Hữu", "Minh", "Thanh", "Ngọc", "Đức", "Quốc", "Thu", "Kim", "Xuân", "Bảo")
GIVEN_NAMES = (
    "An",
    "Bình",
    "Chi",
    "Dũng",
    "Giang",
    "Hà",
    "Hải",
    "Hằng",
    "Hiếu",
    "Hoa",
    "Hùng",
    "Hương",
    "Khánh",
    "Lan",
    "Linh",
    "Long",
    "Mai",
    "Nam",
    "Nga",
    "Phong",
    "Phúc",
    "Phương",
    "Quân",
    "Quang",
    "Sơn",
    "Tâm",
    "Thảo",
    "Trang",
    "Trung",
    "Tuấn",
    "Tú",
    "Vy",
    "Yến",
)


# --- the generated customers and the scenario that answers for them ------------------------


@dataclasses.dataclass(frozen=True)
class DemoCustomer:
    queue: str
    template: str
    fields: dict  # the import body's customer object
    callees: tuple[tuple[str, str], ...]  # (number, CALLEE_MIX behaviour), in calling order


def make_customers(count: int, rng: random.Random, today: dt.date) -> list[DemoCustomer]:
    """`count` customers spread over DEMO_QUEUES, every number unique, reproducible for a seed."""
    used = {SEED_IMPORT["customers"][0]["mobiles"][0]}
    behaviours, weights = list(CALLEE_MIX), list(CALLEE_MIX.values())
    customers = []
    for i in range(count):
        code, template = _pick_queue(i, count)
        numbers = [_new_mobile(rng, used) for _ in range(rng.choices((1, 2, 3), (55, 30, 15))[0])]
        fields = {
            "id": f"KH{100001 + i}",
            "mobiles": numbers,
            "customer_name": f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE_NAMES)} {rng.choice(GIVEN_NAMES)}",
            **_loan(rng, today),
        }
        callees = tuple((n, rng.choices(behaviours, weights)[0]) for n in numbers)
        customers.append(DemoCustomer(code, template, fields, callees))
    return customers


def _pick_queue(i: int, count: int) -> tuple[str, str]:
    edge = 0.0
    for code, template, share in DEMO_QUEUES:
        edge += share
        if i < round(edge * count):
            return code, template
    return DEMO_QUEUES[-1][:2]


def _new_mobile(rng: random.Random, used: set) -> str:
    while True:
        number = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        if number not in used:
            used.add(number)
            return number


def _loan(rng: random.Random, today: dt.date) -> dict:
    installment = rng.randrange(8, 120) * 50_000
    dpd = rng.randrange(1, 95)
    overdue_installments = 1 + dpd // 30
    return {
        "contract_number": f"HD{rng.randrange(10**5, 10**8)}",
        "upcoming_due_date": (today + dt.timedelta(days=rng.randrange(1, 11))).isoformat(),
        "upcoming_amount": installment,
        "due_date": (today - dt.timedelta(days=dpd)).isoformat(),
        "dpd": dpd,
        "number_of_ovd_inst": overdue_installments,
        "total_ovd_amount": installment * overdue_installments + rng.randrange(0, 500) * 1000,
    }
