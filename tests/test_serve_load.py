"""`elsst-bench serve` under load, on loopback only and bounded: 20 concurrent clients x 50 requests each, every
answer equal to the answer the same text gets alone; resident memory flat (within 5 %) over 2,000 requests."""

from __future__ import annotations

import threading
import time

import psutil
import pytest
import requests

CLIENTS, PER_CLIENT, SOAK = 20, 50, 2000
pytestmark = pytest.mark.slow  # load on a live server

TEXTS = [
    "Youth unemployment in rural areas",
    "Attitudes to immigration among young people in Europe",
    "Household income and expenditure survey 2019",
    "Voting behaviour in national elections",
    "Health and wellbeing of older people living alone",
    # a 200-word abstract
    " ".join(["This longitudinal study follows a representative sample of households over ten years, recording "
              "employment, income, housing conditions, education of children, health, and participation in "
              "social and political life, so that researchers can trace how families adapt to economic change."]
             * 5),
    "Arbeitslosigkeit und soziale Sicherung",
    "Bildungsungleichheit in Deutschland",
]


@pytest.fixture(scope="module")
def served(zero_shot_served):
    return zero_shot_served


def _ask(session: requests.Session, base: str, i: int):
    text = TEXTS[i % len(TEXTS)]
    project = "elsst-de" if i % 2 else "elsst-en"
    answer = session.post(f"{base}v1/projects/{project}/suggest", data={"text": text, "limit": 10}, timeout=60)
    return (project, text), answer.status_code, answer.json()


def test_concurrent_clients_get_the_sequential_answers(served):
    with requests.Session() as session:
        expected = {}
        for i in range(2 * len(TEXTS)):
            key, status, body = _ask(session, served.base, i)
            assert status == 200
            expected[key] = body
    failures, counts = [], []
    deadline = time.monotonic() + 300  # bounded in time as well as in count

    def client(c: int):
        done = 0
        with requests.Session() as session:
            for j in range(PER_CLIENT):
                if time.monotonic() > deadline:
                    break
                key, status, body = _ask(session, served.base, c * PER_CLIENT + j)
                if status != 200 or body != expected[key]:
                    failures.append((key, status, body))
                done += 1
        counts.append(done)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=320)
    assert not failures, failures[:2]
    assert sum(counts) == CLIENTS * PER_CLIENT


def test_resident_memory_stays_flat_over_2000_requests(served):
    process = psutil.Process(served.process.pid)
    with requests.Session() as session:
        for i in range(200):  # warm-up: every code path and allocator pool used once
            assert _ask(session, served.base, i)[1] == 200
        before = process.memory_info().rss
        for i in range(SOAK):
            assert _ask(session, served.base, i)[1] == 200
        after = process.memory_info().rss
    assert after <= before * 1.05, (before, after)
