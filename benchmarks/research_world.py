"""Seeded generator of synthetic research worlds: a folder of small files plus questions with exact answers.

A world is a handful of fictional organisations, people, projects, measurement CSVs and meeting notes,
rendered as plain files a small local model can read (every file < 3 KB). Each question comes with its
exact answer, an optional tolerant ``answer_regex``, the ``path:line`` of every line that supports it
(the final hop last) and a kind:

- ``lookup``: one fact on one line of one file ("Who leads project Heron?").
- ``multi_hop``: chains two or three files (project -> people directory -> organisation).
- ``aggregation``: a computation over a measurements CSV (sum, mean to 1 decimal, max, count above the
  threshold defined in ``src/analysis.py``); run_python helps.
- ``which_file``: the answer is the relative path of the file that records a fact.

Distractors make reading (not guessing) necessary: every project file looks alike, ``archive/`` holds
outdated values marked "(2023, superseded)", some people share a surname and differ by one letter of the
first name, and one organisation shares its name stem with an unrelated foundation. Outside ``archive/``
no (entity, attribute) is ever stated with two values, so every answer is unambiguous.

Task ids read ``rw<seed>/<kind>/<entity>/<attribute>[/<metric>]`` so that checks can recompute answers.
Only the standard library is used and every draw comes from ``random.Random(seed)``: the same seed gives
byte-identical files and tasks.

    python benchmarks/research_world.py --seed 1 --out /tmp/world1   # world in /tmp/world1/world
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import random
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

KINDS = ("lookup", "multi_hop", "aggregation", "which_file")
SPLITS = ("train", "validation", "test")

ORG_STEMS = ["Velmora", "Quillstone", "Harrowgate", "Brightmoor", "Fennwick", "Ostrelle", "Marrowby", "Caskaden"]
ORG_SUFFIXES = ["Labs", "Institute", "Dynamics", "Research", "Systems"]
CITIES = ["Tallinn", "Porto", "Ghent", "Lyon", "Graz", "Turku", "Bergen", "Leiden", "Aarhus", "Brno"]
# First names with a one-letter twin: the twin shares the surname, so a careless read picks the wrong row.
TWIN_FIRST_NAMES = {"Mira": "Mara", "Jonas": "Jonah", "Ilse": "Ilsa", "Karin": "Katrin", "Nadia": "Nadja",
                    "Elin": "Eline", "Tomas": "Tomasz", "Lena": "Lene"}
OTHER_FIRST_NAMES = ["Anders", "Beatriz", "Chidi", "Dagny", "Emeka", "Farah", "Goran", "Hana", "Idris", "Joost",
                     "Keiko", "Luca", "Maren", "Noor", "Oskar", "Priya", "Rafael", "Sunniva", "Tariq", "Vera"]
SURNAMES = ["Castell", "Pellworth", "Varga", "Lindqvist", "Marchetti", "Osei", "Rautio", "Brannock", "Delacroix",
            "Ferreira", "Halvorsen", "Iwata", "Jovanic", "Kettering", "Laszlo", "Moreau", "Nakamura", "Oyelaran",
            "Petrakis", "Quist", "Rosewall", "Sandoval", "Thorsby", "Ulrich", "Wennberg", "Yilmaz", "Zamora"]
LEAD_ROLES = ["Principal investigator", "Senior scientist", "Research engineer"]
STAFF_ROLES = ["Data scientist", "Lab manager", "Research engineer", "Postdoctoral fellow", "Technician"]
# No codename is a substring of another, so a grep for one never hits another.
CODENAMES = ["Heron", "Kestrel", "Osprey", "Plover", "Merlin", "Egret", "Curlew", "Bittern", "Lapwing", "Avocet",
             "Dunlin", "Shrike", "Siskin", "Linnet", "Godwit", "Whimbrel"]
TOPICS = ["soil moisture sensing", "battery degradation", "protein stability assays", "coastal erosion models",
          "speech denoising", "wind turbine vibration", "crop yield forecasting", "water quality monitoring",
          "graph compression", "cold-chain logistics", "glacier melt imaging", "urban noise mapping"]
STATUSES = ["active", "paused", "completed", "on hold", "scoping"]
SUPPLIERS = ["Nordlys Components", "Arcadia Optics", "Ferrow Instruments", "Blue Fen Devices",
             "Kettle Point Sensors", "Halden Parts"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# Filler never uses an attribute keyword (lead, budget, start, status, review, supplier) nor a codename: the
# tests rely on that to prove that only the fact lines state facts.
PROJECT_FILLER = [
    "The team meets every second Tuesday to compare notes.",
    "Field data is cleaned before it enters the shared folder.",
    "Early prototypes were built from off-the-shelf parts.",
    "Results are shared with partner groups once a quarter.",
    "Most of the analysis runs on a single workstation.",
    "Documentation lives next to the data it describes.",
    "The group prefers small, repeatable experiments over large campaigns.",
    "External collaborators receive read-only copies of the data.",
    "Calibration runs are logged alongside the measurements.",
    "A short summary is circulated after each milestone.",
]
NOTE_FILLER = [
    "Room booking for the spring workshop is confirmed.",
    "Everyone should tidy the shared drive by Friday.",
    "The shared printer on the second floor is out of toner again.",
    "Travel requests for the autumn conference go through the usual form.",
    "New laptops arrive next month; old ones go back to IT.",
    "The coffee machine contract was renewed for another year.",
]
ORG_FILLER = [
    "Staff split their time between fieldwork and the central lab.",
    "The organisation publishes an open annual report.",
    "Visitors sign in at the front desk.",
    "Most datasets are released under an open licence.",
]
METRICS = ("latency_ms", "samples", "yield_pct")
AGG_OPS = ("sum", "mean", "max", "count_alert")


@dataclass
class Task:
    """One question about a world; ``root`` is the absolute world folder the task file needs."""

    id: str
    question: str
    answer: str
    answer_regex: str | None
    kind: str
    sources: list[str]
    split: str = ""
    root: str = ""


@dataclass
class Org:
    name: str
    slug: str
    city: str
    founded: int
    director: str = ""
    decoy: bool = False


@dataclass
class Person:
    name: str
    role: str
    org: str
    start_year: int


@dataclass
class Project:
    codename: str
    slug: str
    topic: str
    lead: Person
    budget: int
    start: dt.date
    status: str
    review: dt.date
    supplier: str
    metrics: list[str]
    # (date, metric, value): latency and yield in tenths so that sums and means stay exact.
    rows: list[tuple[dt.date, str, int]] = field(default_factory=list)


class _Doc:
    """A file under construction that remembers which line holds which fact, so sources are exact."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []
        self.anchors: dict[str, int] = {}

    def add(self, text: str = "", key: str | None = None) -> None:
        self.lines.append(text)
        if key is not None:
            self.anchors[key] = len(self.lines)

    def ref(self, key: str) -> str:
        return f"{self.path}:{self.anchors[key]}"

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------------------
# Answer formatting: one canonical string plus a regex that accepts the usual ways a model writes it.


def euros(amount: int) -> str:
    return f"EUR {amount:,}"


def tenths(value: int) -> str:
    return f"{value // 10}.{value % 10}"


def _int_regex(value: int) -> str:
    digits = f"{value:,}".replace(",", r"[,.\s]?")
    return rf"(?<![\d.,]){digits}(?:\.0+)?(?!\.?\d)"


def _year_regex(year: int) -> str:
    return rf"(?<![\d.,]){year}(?!\.?\d)"


def _decimal_regex(text: str) -> str:
    return rf"(?<![\d.]){re.escape(text)}0*(?!\.?\d)"


def _budget_regex(amount: int) -> str:
    millions = re.escape(f"{amount / 1_000_000:g}")
    return rf"{_int_regex(amount)}|(?<![\d.]){millions}\s?(?:m\b|million)"


def _date_regex(day: dt.date) -> str:
    month = MONTHS[day.month - 1]
    return rf"{day.isoformat()}|\b{day.day} {month},? {day.year}|\b{month} {day.day},? {day.year}"


def _path_regex(path: str) -> str:
    # An absolute path ending in the relative one is as good as the relative one.
    return rf"(?<![\w.-]){re.escape(path)}(?![\w/-]|\.\w)"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _random_date(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return dt.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))


# ----------------------------------------------------------------------------------------------------
# The world model: every random draw happens here, in a fixed order.


@dataclass
class World:
    seed: int
    orgs: list[Org]
    people: list[Person]
    projects: list[Project]
    alert_ms: int
    min_samples: int
    # Superseded 2023 values for the archive: (project slug, attribute) -> value as written.
    archived: dict[tuple[str, str], str]
    archived_alert_ms: int
    note_dates: list[dt.date]
    note_projects: list[list[Project]]


def _build_world(rng: random.Random, seed: int, n_projects: int) -> World:
    if not 2 <= n_projects <= len(CODENAMES):
        raise ValueError(f"n_projects must be between 2 and {len(CODENAMES)}")
    n_orgs = rng.choice([3, 4])
    stems = rng.sample(ORG_STEMS, n_orgs)
    cities = rng.sample(CITIES, n_orgs + 1)
    orgs = [Org(f"{stem} {rng.choice(ORG_SUFFIXES)}", "", cities[i], rng.randint(1968, 2012))
            for i, stem in enumerate(stems)]
    # The decoy shares a main organisation's stem: "Velmora Labs" vs "Velmora Foundation".
    orgs.append(Org(f"{stems[0]} Foundation", "", cities[-1], rng.randint(1968, 2012), decoy=True))
    for org in orgs:
        org.slug = _slug(org.name)
    main_orgs = [o for o in orgs if not o.decoy]

    surnames = iter(rng.sample(SURNAMES, n_projects + n_orgs + 3))
    n_twins = min(3, n_projects)
    lead_firsts = rng.sample(sorted(TWIN_FIRST_NAMES), n_twins)
    others = rng.sample(OTHER_FIRST_NAMES, n_projects - n_twins + n_orgs + 3)
    lead_firsts += others[:n_projects - n_twins]
    rng.shuffle(lead_firsts)
    leads = [Person(f"{first} {next(surnames)}", rng.choice(LEAD_ROLES), main_orgs[i % n_orgs].name,
                    rng.randint(2008, 2022)) for i, first in enumerate(lead_firsts)]
    rng.shuffle(leads)  # so the org of a project's lead is not predictable from its position
    directors = []
    for org, first in zip(main_orgs, others[n_projects - n_twins:], strict=False):
        org.director = f"{first} {next(surnames)}"
        directors.append(Person(org.director, "Director", org.name, rng.randint(2005, 2020)))
    staff = [Person(f"{first} {next(surnames)}", rng.choice(STAFF_ROLES), rng.choice(main_orgs).name,
                    rng.randint(2010, 2024)) for first in others[n_projects - n_twins + n_orgs:]]
    twins = []
    for lead in leads:
        first, surname = lead.name.split(" ", 1)
        if first in TWIN_FIRST_NAMES:
            other_orgs = [o.name for o in orgs if o.name != lead.org]
            twins.append(Person(f"{TWIN_FIRST_NAMES[first]} {surname}", rng.choice(STAFF_ROLES),
                                rng.choice(other_orgs), rng.randint(2008, 2024)))
    people = leads + directors + staff + twins
    rng.shuffle(people)

    alert_ms = rng.randint(200, 260)
    projects = []
    for codename, lead in zip(rng.sample(CODENAMES, n_projects), leads, strict=True):
        metrics = ["latency_ms", "samples"] + (["yield_pct"] if rng.random() < 0.5 else [])
        project = Project(
            codename=codename, slug=codename.lower(), topic=rng.choice(TOPICS), lead=lead,
            budget=rng.randint(30, 500) * 5_000, start=_random_date(rng, dt.date(2021, 1, 1), dt.date(2024, 6, 30)),
            status=rng.choice(STATUSES), review=_random_date(rng, dt.date(2025, 1, 6), dt.date(2025, 12, 12)),
            supplier=rng.choice(SUPPLIERS), metrics=metrics)
        project.rows = _measurements(rng, metrics, alert_ms)
        projects.append(project)

    archived: dict[tuple[str, str], str] = {}
    for project in projects:
        old_budget = project.budget + rng.choice([-1, 1]) * rng.randint(4, 40) * 5_000
        archived[(project.slug, "budget")] = euros(max(old_budget, 50_000))
        if rng.random() < 0.5:
            # The twin is the most tempting wrong lead; fall back to anyone else.
            twin = next((p for p in twins if p.name.split(" ", 1)[1] == project.lead.name.split(" ", 1)[1]), None)
            archived[(project.slug, "lead")] = (twin or rng.choice([p for p in staff if p != project.lead])).name
        if rng.random() < 0.5:
            archived[(project.slug, "status")] = rng.choice([s for s in STATUSES if s != project.status])

    n_notes = max(2, (n_projects + 1) // 2)
    note_dates = sorted(rng.sample(range(dt.date(2024, 9, 2).toordinal(), dt.date(2024, 12, 20).toordinal()),
                                   n_notes))
    order = list(projects)
    rng.shuffle(order)
    # Each project's review date and supplier appear in exactly one note, so which_file has one answer.
    note_projects = [order[i::n_notes] for i in range(n_notes)]
    return World(seed, orgs, people, projects, alert_ms, rng.randint(15, 30), archived,
                 alert_ms + rng.choice([-1, 1]) * rng.randint(20, 60),
                 [dt.date.fromordinal(d) for d in note_dates], note_projects)


def _measurements(rng: random.Random, metrics: list[str], alert_ms: int) -> list[tuple[dt.date, str, int]]:
    n_dates = rng.randint(6, 9)
    first = dt.date(2024, 1, 1) + dt.timedelta(weeks=rng.randint(0, 30))
    dates = [first + dt.timedelta(weeks=i) for i in range(n_dates)]
    values = {"latency_ms": _tenths_without_ties(rng, len(dates), 1500, 3300, forbidden=alert_ms * 10),
              "samples": [rng.randint(10, 60) for _ in dates],
              "yield_pct": _tenths_without_ties(rng, len(dates), 700, 990)}
    return [(day, metric, values[metric][i]) for i, day in enumerate(dates) for metric in metrics]


def _tenths_without_ties(rng: random.Random, n: int, low: int, high: int, forbidden: int = -1) -> list[int]:
    """n readings in tenths whose mean is far from a rounding tie and none of which equals ``forbidden``.

    So any rounding rule and any float arithmetic give the same 1-decimal mean, and "exceeds the
    threshold" never depends on how a reading equal to it is treated.
    """
    while True:
        values = [rng.randint(low, high) for _ in range(n)]
        mean = Fraction(sum(values), n)
        if not Fraction(2, 5) <= mean - math.floor(mean) <= Fraction(3, 5) and forbidden not in values:
            return values


# ----------------------------------------------------------------------------------------------------
# Rendering


def _render(world: World, rng: random.Random) -> list[_Doc]:
    docs: list[_Doc] = []
    for org in world.orgs:
        doc = _Doc(f"orgs/{org.slug}.md")
        doc.add(f"# {org.name}")
        doc.add()
        doc.add(rng.choice(ORG_FILLER))
        doc.add()
        doc.add(f"- Founded: {org.founded}", key="founded")
        doc.add(f"- Headquarters: {org.city}", key="city")
        if org.director:
            doc.add(f"- Director: {org.director}", key="director")
        doc.add()
        if org.decoy:
            sibling = next(o.name for o in world.orgs if o.name.split()[0] == org.name.split()[0] and not o.decoy)
            doc.add(f"An independent charity; it has no ties to {sibling}.")
        else:
            doc.add(rng.choice(ORG_FILLER))
        docs.append(doc)

    doc = _Doc("people/directory.md")
    doc.add("# Staff directory")
    doc.add()
    doc.add("| Name | Role | Organisation | Start year |")
    doc.add("| --- | --- | --- | --- |")
    for person in world.people:
        doc.add(f"| {person.name} | {person.role} | {person.org} | {person.start_year} |", key=person.name)
    docs.append(doc)

    for project in world.projects:
        docs.append(_render_project(project, rng))
        csv_doc = _Doc(f"data/{project.slug}_measurements.csv")
        csv_doc.add("date,metric,value", key="header")
        for day, metric, value in project.rows:
            csv_doc.add(f"{day.isoformat()},{metric},{value if metric == 'samples' else tenths(value)}")
        docs.append(csv_doc)

    for day, discussed in zip(world.note_dates, world.note_projects, strict=True):
        doc = _Doc(f"notes/{day.isoformat()}-meeting.md")
        doc.add(f"# Meeting notes, {day.isoformat()}")
        doc.add()
        doc.add("Attendees: " + ", ".join(p.lead.name for p in discussed))
        doc.add()
        doc.add("## Items")
        doc.add()
        items: list[tuple[str, str | None]] = [(f"- {rng.choice(NOTE_FILLER)}", None)]
        for project in discussed:
            c = project.codename
            items.append((f"- {c}: the next review is scheduled for {project.review.isoformat()}.", f"{c}/review"))
            items.append((f"- {c}: the team chose {project.supplier} as supplier.", f"{c}/supplier"))
            items.append((f"- {c}: {project.lead.name} presented the latest measurements.", None))
        items.append((f"- {rng.choice(NOTE_FILLER)}", None))
        for text, key in items:
            doc.add(text, key=key)
        docs.append(doc)

    doc = _Doc("src/analysis.py")
    doc.add('"""Shared helpers for the measurement CSVs in data/."""')
    doc.add()
    doc.add("import csv")
    doc.add()
    doc.add("# Latency readings above this value (in ms) raise an alert.")
    doc.add(f"LATENCY_ALERT_MS = {world.alert_ms}.0", key="alert")
    doc.add("# Runs with fewer samples than this are dropped from summaries.")
    doc.add(f"MIN_SAMPLES_PER_RUN = {world.min_samples}", key="min_samples")
    doc.add()
    doc.add()
    doc.add("def load(path):")
    doc.add('    with open(path, newline="") as handle:')
    doc.add("        return list(csv.DictReader(handle))")
    doc.add()
    doc.add()
    doc.add("def alerts(rows):")
    doc.add('    return [r for r in rows if r["metric"] == "latency_ms" and float(r["value"]) > LATENCY_ALERT_MS]')
    docs.append(doc)

    doc = _Doc("archive/project-register-2023.md")
    doc.add("# Project register, 2023 (superseded)")
    doc.add()
    doc.add("These values were replaced in 2024 and are kept for reference only.")
    doc.add()
    for project in world.projects:
        for attribute in ("budget", "lead", "status"):
            if (project.slug, attribute) in world.archived:
                value = world.archived[(project.slug, attribute)]
                doc.add(f"- {project.codename} {attribute} (2023, superseded): {value}")
    docs.append(doc)
    doc = _Doc("archive/analysis-thresholds-2023.md")
    doc.add("# Analysis thresholds, 2023 (superseded)")
    doc.add()
    doc.add(f"- Latency alert threshold (2023, superseded): {world.archived_alert_ms} ms")
    doc.add("- See src/analysis.py for the values in use.")
    docs.append(doc)
    return docs


def _render_project(project: Project, rng: random.Random) -> _Doc:
    doc = _Doc(f"projects/{project.slug}.md")
    doc.add(f"# Project {project.codename}")
    doc.add()
    filler = rng.sample(PROJECT_FILLER, 4)
    doc.add(f"{project.codename} investigates {project.topic}.")
    doc.add(filler[0])
    doc.add()
    doc.add("## Key facts")
    doc.add()
    # Bullets or prose, in varying order: the model must read, not pattern-match a fixed layout.
    facts = [
        ("lead", f"- Lead: {project.lead.name}", f"The project lead is {project.lead.name}."),
        ("budget", f"- Budget: {euros(project.budget)}", f"Its approved budget is {euros(project.budget)}."),
        ("start", f"- Start date: {project.start.isoformat()}", f"Work started on {project.start.isoformat()}."),
        ("status", f"- Status: {project.status}", f"Current status: {project.status}."),
    ]
    rng.shuffle(facts)
    for key, bullet, prose in facts:
        doc.add(bullet if rng.random() < 0.6 else prose, key=key)
    doc.add()
    doc.add("## Background")
    doc.add()
    for sentence in filler[1:]:
        doc.add(sentence)
    return doc


# ----------------------------------------------------------------------------------------------------
# Tasks


def _tasks(world: World, docs: list[_Doc], rng: random.Random) -> list[Task]:
    by_path = {d.path: d for d in docs}
    directory = by_path["people/directory.md"]
    analysis = by_path["src/analysis.py"]
    org_doc = {o.name: by_path[f"orgs/{o.slug}.md"] for o in world.orgs}
    org_by_name = {o.name: o for o in world.orgs}
    note_of: dict[str, _Doc] = {}
    for day, discussed in zip(world.note_dates, world.note_projects, strict=True):
        for project in discussed:
            note_of[project.slug] = by_path[f"notes/{day.isoformat()}-meeting.md"]
    prefix = f"rw{world.seed}"
    tasks: list[Task] = []

    def add(kind: str, ident: str, question: str, answer: str, regex: str | None, sources: list[str]) -> None:
        tasks.append(Task(f"{prefix}/{kind}/{ident}", question, answer, regex, kind, sources))

    for p in world.projects:
        pdoc = by_path[f"projects/{p.slug}.md"]
        c, lead = p.codename, p.lead
        org = org_by_name[lead.org]
        lookups = {
            "lead": (f"Who leads project {c}?", lead.name, None, pdoc.ref("lead")),
            "budget": (f"What is the current budget of project {c}?", euros(p.budget), _budget_regex(p.budget),
                       pdoc.ref("budget")),
            "start": (f"On what date did project {c} start?", p.start.isoformat(), _date_regex(p.start),
                      pdoc.ref("start")),
            "status": (f"What is the current status of project {c}?", p.status, None, pdoc.ref("status")),
            "review": (f"When is the next review of project {c} scheduled?", p.review.isoformat(),
                       _date_regex(p.review), note_of[p.slug].ref(f"{c}/review")),
            "supplier": (f"Which supplier did the team choose for project {c}?", p.supplier, None,
                         note_of[p.slug].ref(f"{c}/supplier")),
        }
        for attr in rng.sample(sorted(lookups), 2):
            question, answer, regex, source = lookups[attr]
            add("lookup", f"{p.slug}/{attr}", question, answer, regex, [source])

        hop = [pdoc.ref("lead"), directory.ref(lead.name)]
        odoc = org_doc[org.name]
        hops = {
            "lead_org": (f"Which organisation does the lead of project {c} work for?", org.name, None, hop),
            "lead_year": (f"In which year did the lead of project {c} start at their organisation?",
                          str(lead.start_year), _year_regex(lead.start_year), hop),
            "lead_role": (f"What is the role of the person who leads project {c}?", lead.role, None, hop),
            "lead_city": (f"In which city is the organisation of the lead of project {c} headquartered?",
                          org.city, None, [*hop, odoc.ref("city")]),
            "lead_director": (f"Who directs the organisation that employs the lead of project {c}?",
                              org.director, None, [*hop, odoc.ref("director")]),
        }
        for attr in rng.sample(sorted(hops), 2):
            question, answer, regex, sources = hops[attr]
            add("multi_hop", f"{p.slug}/{attr}", question, answer, regex, sources)

        csv_ref = by_path[f"data/{p.slug}_measurements.csv"].ref("header")
        for op, metric in _pick_aggregations(rng, p):
            answer, regex = _aggregate(p, op, metric, world.alert_ms)
            where = f"project {c}'s measurements (data/{p.slug}_measurements.csv)"
            question, sources = {
                "sum": (f"What is the sum of all {metric} values in {where}?", [csv_ref]),
                "mean": (f"What is the mean of the {metric} values in {where}, rounded to 1 decimal place?",
                         [csv_ref]),
                "max": (f"What is the highest {metric} value recorded in {where}?", [csv_ref]),
                "count_alert": (f"How many {metric} readings in {where} exceed the latency alert threshold "
                                "defined in src/analysis.py?", [analysis.ref("alert"), csv_ref]),
            }[op]
            add("aggregation", f"{p.slug}/{op}/{metric}", question, answer, regex, sources)

        files = {
            "budget": (f"Which file records the current budget of project {c}?", pdoc.ref("budget")),
            "review": (f"Which file records the next review date of project {c}?",
                       note_of[p.slug].ref(f"{c}/review")),
            "supplier": (f"Which file records the supplier chosen for project {c}?",
                         note_of[p.slug].ref(f"{c}/supplier")),
            "measurements": (f"Which file holds the raw measurements of project {c}?", csv_ref),
        }
        attr = rng.choice(sorted(files))
        question, source = files[attr]
        path = source.rsplit(":", 1)[0]
        add("which_file", f"{p.slug}/{attr}", question, path, _path_regex(path), [source])

    # A few facts that are not about projects, so lookups are not all shaped alike.
    main_orgs = [o for o in world.orgs if not o.decoy]
    hq_org, founded_org = rng.sample(main_orgs, 2)
    add("lookup", f"{hq_org.slug}/city", f"In which city is {hq_org.name} headquartered?", hq_org.city, None,
        [org_doc[hq_org.name].ref("city")])
    add("lookup", f"{founded_org.slug}/founded", f"In which year was {founded_org.name} founded?",
        str(founded_org.founded), _year_regex(founded_org.founded), [org_doc[founded_org.name].ref("founded")])
    leads = {p.lead.name for p in world.projects}
    non_leads = sorted((p for p in world.people if p.name not in leads and p.role != "Director"),
                       key=lambda p: p.name)
    role_person, year_person = rng.sample(non_leads, 2)
    add("lookup", f"{_slug(role_person.name)}/role", f"What is {role_person.name}'s role?", role_person.role, None,
        [directory.ref(role_person.name)])
    add("lookup", f"{_slug(year_person.name)}/start_year",
        f"In which year did {year_person.name} start at their organisation?", str(year_person.start_year),
        _year_regex(year_person.start_year), [directory.ref(year_person.name)])
    add("lookup", "analysis/alert", "What latency threshold, in milliseconds, triggers an alert in the analysis code?",
        str(world.alert_ms), _int_regex(world.alert_ms), [analysis.ref("alert")])
    add("lookup", "analysis/min_samples", "What minimum number of samples per run does the analysis code require?",
        str(world.min_samples), _int_regex(world.min_samples), [analysis.ref("min_samples")])
    add("which_file", "analysis/alert", "Which file defines the latency alert threshold currently in use?",
        analysis.path, _path_regex(analysis.path), [analysis.ref("alert")])
    add("which_file", f"{_slug(year_person.name)}/directory", f"Which file records the start year of "
        f"{year_person.name}?", directory.path, _path_regex(directory.path), [directory.ref(year_person.name)])
    return tasks


def _pick_aggregations(rng: random.Random, project: Project) -> list[tuple[str, str]]:
    options = [("sum", "samples"), ("mean", "latency_ms"), ("max", "latency_ms"), ("count_alert", "latency_ms")]
    if "yield_pct" in project.metrics:
        options += [("mean", "yield_pct"), ("max", "yield_pct")]
    return rng.sample(options, 2)


def _aggregate(project: Project, op: str, metric: str, alert_ms: int) -> tuple[str, str]:
    values = [v for _, m, v in project.rows if m == metric]
    if op == "sum":
        total = sum(values)
        return str(total), _int_regex(total)
    if op == "count_alert":
        count = sum(v > alert_ms * 10 for v in values)
        return str(count), _int_regex(count)
    if op == "max":
        text = str(max(values)) if metric == "samples" else tenths(max(values))
        return text, _decimal_regex(text)
    # mean in tenths, rounded to the nearest tenth (never a tie, see _tenths_without_ties)
    text = tenths(round(Fraction(sum(values), len(values))))
    return text, _decimal_regex(text)


def _assign_splits(tasks: list[Task], seed: int) -> None:
    """Rank each kind's tasks by a hash of (seed, id) and cut at 50% / 75%.

    Cutting ranks instead of thresholding each hash guarantees every split gets its share of every kind;
    the hash makes the order independent of generation order, and the same seed and id always land in
    the same split.
    """
    for kind in KINDS:
        group = sorted((t for t in tasks if t.kind == kind),
                       key=lambda t: hashlib.sha256(f"{seed}:{t.id}".encode()).hexdigest())
        for rank, task in enumerate(group):
            position = (rank + 0.5) / len(group)
            task.split = "train" if position < 0.5 else "validation" if position < 0.75 else "test"


# ----------------------------------------------------------------------------------------------------
# Public API


def generate_world(seed: int, root: Path, *, n_projects: int = 6) -> list[Task]:
    """Write the world for ``seed`` into ``root`` (absent or empty) and return its tasks with splits."""
    root = Path(root).resolve()
    if root.exists() and any(root.iterdir()):
        # Stale files from another seed would silently change the answers.
        raise FileExistsError(f"{root} is not empty")
    rng = random.Random(seed)
    world = _build_world(rng, seed, n_projects)
    docs = _render(world, rng)
    tasks = _tasks(world, docs, rng)
    _assign_splits(tasks, seed)
    for doc in docs:
        path = root / doc.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc.text(), encoding="utf-8")
    for task in tasks:
        task.root = str(root)
    return tasks


def write_tasks(tasks: list[Task], path: Path) -> None:
    """One JSON object per line: question, answer, answer_regex (when set), root, sources, id, kind, split."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for task in tasks:
            row = {"id": task.id, "question": task.question, "answer": task.answer}
            if task.answer_regex is not None:
                row["answer_regex"] = task.answer_regex
            row |= {"root": task.root, "sources": task.sources, "kind": task.kind, "split": task.split}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_tasks(path: Path) -> list[Task]:
    """The inverse of write_tasks."""
    tasks = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        tasks.append(Task(row["id"], row["question"], row["answer"], row.get("answer_regex"), row["kind"],
                          list(row["sources"]), row["split"], row["root"]))
    return tasks


def counts(tasks: list[Task]) -> dict[str, Counter[str]]:
    """Tasks per split for each kind, plus a "total" row."""
    table: dict[str, Counter[str]] = {kind: Counter() for kind in (*KINDS, "total")}
    for task in tasks:
        table[task.kind][task.split] += 1
        table["total"][task.split] += 1
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: the world goes to OUT/world, the tasks to OUT/tasks.jsonl")
    parser.add_argument("--n-projects", type=int, default=6)
    parser.add_argument("--force", action="store_true", help="replace an existing OUT/world")
    args = parser.parse_args(argv)
    # tasks.jsonl sits beside the world, not in it: inside, list_files/run_python would reveal the answers.
    world_root = args.out.resolve() / "world"
    if args.force and world_root.exists():
        shutil.rmtree(world_root)
    tasks = generate_world(args.seed, world_root, n_projects=args.n_projects)
    write_tasks(tasks, args.out / "tasks.jsonl")
    print(f"world: {world_root}\ntasks: {args.out.resolve() / 'tasks.jsonl'} ({len(tasks)})")
    print(f"{'kind':<12}" + "".join(f"{s:>12}" for s in (*SPLITS, "all")))
    for kind, row in counts(tasks).items():
        print(f"{kind:<12}" + "".join(f"{row[s]:>12}" for s in SPLITS) + f"{sum(row.values()):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
