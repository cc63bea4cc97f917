"""The DynamoDB store's delivery acknowledgements (sparse GSI ``undelivered``), on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dpc_core.store import Claim, Slot

CHILD = "333333333333/pipeline-x"
WINDOW = "2026-11-26"
PARENT = "111111111111/listings"


@pytest.fixture
def store(aws_env: None) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    from dpc_core.stores.dynamodb import DynamoStore, create_tables

    with mock_aws():
        client = boto3.client("dynamodb")
        yield DynamoStore(client, create_tables(client, "t-"))


def _claim(store: Any, window: str = WINDOW, run: str = "r1", start: int = 1) -> Claim:
    """A slot update and the claim of the window's next generation."""
    state = store.update_slot(CHILD, window, PARENT, Slot(f"arn:{run}", start, "SUCCEEDED", 0))
    generation = state.generation + 1
    claim = Claim(CHILD, window, generation, f"{window}-g{generation}",
                  ({"pipeline": "listings", "account": "111111111111",
                    "executionArn": f"arn:{run}", "status": "SUCCEEDED"},))
    assert store.claim(CHILD, window, state, claim)
    return claim


def _item(store: Any, window: str = WINDOW) -> dict[str, Any]:
    return store.client.get_item(TableName=store.tables.windows, ConsistentRead=True,
                                 Key={"child": {"S": CHILD}, "window": {"S": window}})["Item"]


def test_a_new_claim_is_undelivered(store: Any) -> None:
    claim = _claim(store)
    assert store.undelivered_claims(0) == [claim]


def test_marking_delivered_takes_the_window_out_of_the_index(store: Any) -> None:
    claim = _claim(store)
    store.mark_delivered(CHILD, WINDOW, claim.generation)
    assert store.undelivered_claims(0) == []
    assert not any(k.startswith("U#") or k.startswith("pending") for k in _item(store))


def test_marking_twice_is_harmless(store: Any) -> None:
    claim = _claim(store)
    store.mark_delivered(CHILD, WINDOW, claim.generation)
    store.mark_delivered(CHILD, WINDOW, claim.generation)
    assert store.undelivered_claims(0) == []
    assert store.claims(CHILD) == [claim]


def test_claims_younger_than_the_age_are_not_listed(store: Any) -> None:
    import time

    _claim(store)
    now = int(time.time() * 1000)
    assert store.undelivered_claims(60_000, now_ms=now) == []
    assert len(store.undelivered_claims(60_000, now_ms=now + 61_000)) == 1


def test_an_older_undelivered_claim_survives_the_newer_ones_acknowledgement(
        store: Any) -> None:
    first = _claim(store, run="r1", start=1)
    second = _claim(store, run="r2", start=2)
    store.mark_delivered(CHILD, WINDOW, second.generation)
    assert store.undelivered_claims(0) == [first]
    store.mark_delivered(CHILD, WINDOW, first.generation)
    assert store.undelivered_claims(0) == []
    assert "pending_at" not in _item(store)


def test_claims_of_several_windows_are_listed_oldest_first(store: Any) -> None:
    a = _claim(store, window="2026-11-25")
    b = _claim(store, window="2026-11-26")
    assert store.undelivered_claims(0) == [a, b]
    assert store.undelivered_claims(0, limit=1) == [a]


def test_marking_an_unknown_window_creates_nothing(store: Any) -> None:
    store.mark_delivered(CHILD, "2030-01-01", 1)
    assert store.claims(CHILD) == []
    answer = store.client.scan(TableName=store.tables.windows)
    assert answer["Count"] == 0


def test_an_undelivered_claim_of_a_downstream_rerun_keeps_the_flag(store: Any) -> None:
    state = store.update_slot(CHILD, WINDOW, PARENT, Slot("arn:r9", 9, "SUCCEEDED", 0))
    claim = Claim(CHILD, WINDOW, state.generation + 1, "g1",
                  ({"pipeline": "listings", "account": "111111111111",
                    "executionArn": "arn:r9", "status": "SUCCEEDED"},), downstream=True)
    assert store.claim(CHILD, WINDOW, state, claim)
    (again,) = store.undelivered_claims(0)
    assert again.downstream is True and again == claim
