"""Demo apps: Flowfinity's published "Lead Registration" example, and a small "Service Visit".

Field encodings follow the published example: numbers as digit strings, choices as
`{"Selection": ...}`, zone-less date-times, a zero-padded RecordID.
"""

from __future__ import annotations

import random
import typing as t

from flowfinity_simulator.records import App, Store

FIRST_NAMES = ["John", "Maria", "Wei", "Aisha", "Lars", "Zoë", "Kenji", "Olu", "Priya", "Sam"]
LAST_NAMES = ["Smith", "García", "Chen", "Khan", "Berg", "Dubois", "Sato", "Adeyemi", "Rao"]
COMPANIES = ["ABC Inc", "Northwind", "Contoso", "Initech", "Globex", "Umbrella", "Hooli"]
INDUSTRIES = ["Energy", "Retail", "Finance", "Healthcare", "Manufacturing"]
RATINGS = ["Hot", "Warm", "Cold"]
PROBABILITIES = ["0-20%", "20-50%", "50-80%", "80-100%"]


def lead_fields(rng: random.Random) -> t.Callable[[int], dict[str, t.Any]]:
    """A Lead Registration record generator; the same seed gives the same records."""

    def make(number: int) -> dict[str, t.Any]:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        day = 1 + number % 28
        return {
            "BusinessPhone": f"555-{1000 + number % 9000}",
            "CallbackRequested": {"Selection": ["Yes"] if number % 3 else []},
            "Company": rng.choice(COMPANIES),
            "EmailAddress": f"{first.lower()}.{last.lower()}@example.com",
            "EmployeeCount": str(rng.randint(1, 5000)),
            "FirstContact": f"2020-09-{day:02d}T00:00:00.000",
            "FirstName": first,
            "Industry": {"Selection": rng.choice(INDUSTRIES)},
            "LastName": last,
            "MobilePhone": f"555-{2000 + number % 7000}",
            "Probability": {"Selection": rng.choice(PROBABILITIES)},
            "Rating": {"Selection": rng.choice(RATINGS)},
            "Summary": "Interested in the product. Get in touch in 2 weeks.",
            "TotalValue": str(rng.randint(10, 100_000)),
            "CreatedBy": "Mike Smith",
            "CreatedOn": f"2020-09-{day:02d}T04:37:30.000",
            "State": "Open",
        }

    return make


def visit_fields(rng: random.Random) -> t.Callable[[int], dict[str, t.Any]]:
    """A Service Visit record generator (a second app, so two views share one counter)."""

    def make(number: int) -> dict[str, t.Any]:
        return {
            "Technician": rng.choice(FIRST_NAMES),
            "Site": rng.choice(COMPANIES),
            "VisitDate": f"2021-03-{1 + number % 28:02d}T09:00:00.000",
            "Hours": str(rng.randint(1, 8)),
            "Checklist": {"Selection": rng.sample(["Safety", "Filters", "Wiring", "Report"], 2)},
            "CreatedBy": "Dispatch",
            "CreatedOn": f"2021-03-{1 + number % 28:02d}T08:00:00.000",
            "State": "Scheduled",
        }

    return make


def load_demo(
    store: Store,
    records_per_app: int = 25,
    seed: int = 1,
    records_per_submission: int = 1,
    extra_apps: int = 0,
) -> None:
    """Create both demo apps with interleaved submissions, as on a site where both are in use.

    With `records_per_submission` above 1, records are created in transactions of that many,
    each sharing one submission id. `extra_apps` adds that many more Lead Registration-like
    apps (`app03`, `app04`, ...), for a site with many views.
    """
    rng = random.Random(seed)
    store.add_app(App("leads", "LeadRegistration", "LeadsSync", fields=lead_fields(rng)))
    store.add_app(App("visits", "ServiceVisit", "VisitsSync", fields=visit_fields(rng)))
    for number in range(3, 3 + extra_apps):
        name = f"App{number:02d}"
        store.add_app(App(f"app{number:02d}", name, f"{name}Sync", fields=lead_fields(rng)))
    for first in range(0, records_per_app, records_per_submission):
        for view_key in list(store.apps):
            store.advance_counter(rng.randint(20, 200))  # submissions in apps not synced here
            if records_per_submission == 1:
                store.create(view_key)
            else:
                count = min(records_per_submission, records_per_app - first)
                store.create_together(view_key, [None] * count)
