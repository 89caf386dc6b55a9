"""Reading the ledger: the person's disclosures with inclusion proofs that verify against the signed
checkpoint, filters, cursor pagination, exports, precise 400s; and the public verification API."""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import replace
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import KeySet

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import merkle, reading, storage
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.store import Store
from tests.support.factories import make_user
from tests.support.ledger import ACME, ALICE, APP_A, APP_B, BOB, DEV, journal, record
from tests.support.ledger import LOG_A as A
from tests.support.signin import session_sign_in

T0 = 1_700_000_000


def b(value: str) -> bytes:
    return base64.b64decode(value)


def num(entry: dict[str, Any]) -> int:
    """The number ``n`` of ``record(n)`` an entry of a page is (its index is per log)."""
    return int(entry["record"]["id"][3:], 16)


@pytest.fixture
def sequencer(store: Store, settings: Settings) -> Sequencer:
    return Sequencer(store, Keyring(settings.signing_keys_file), settings)


@pytest.fixture
def filled(store: Store, sequencer: Sequencer) -> Store:
    """Alice: 6 records (two share a time) in her log A (indexes 0-5: records 0, 2 in the first
    run, then 3, 4, 6, 7), Bob: 2 in his log; app A and B; two org records in ACME."""
    rows = [
        record(0, t=T0),
        record(1, t=T0 + 10, person=BOB),
        record(2, t=T0 + 20, app=APP_B),
        record(3, t=T0 + 20),
        record(4, t=T0 + 30, org=ACME),
        record(5, t=T0 + 40, person=BOB, org=ACME),
    ]
    for r in rows[:3]:
        journal(store, r)
    sequencer.run_once()
    for r in rows[3:]:
        journal(store, r)
    journal(store, record(6, t=T0 + 50, app=APP_B))
    journal(store, record(7, t=T0 + 60))
    sequencer.run_once()
    return store


def sign_in(client: Any, store: Store, uid: str) -> None:
    """The person ``uid`` (a fixed id of the journal records) exists and is signed in at T0."""
    make_user(store, id=uid)
    session_sign_in(client, uid, auth_time=T0)


def verified_checkpoint(client: Any) -> dict[str, Any]:
    jwks = client.get("/ledger/v1/keys").get_json()
    latest = client.get(f"/ledger/v1/logs/{A}/checkpoints/latest").get_json()
    obj = jws.deserialize_compact(latest["checkpoint"], KeySet.import_key_set(jwks), algorithms=["EdDSA"])
    return json.loads(obj.payload)


def test_not_signed_in_is_401_json(client: Any) -> None:
    response = client.get("/privacy/v1/disclosures", headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["error"] == "unauthorized"


def test_person_reads_own_records_with_proofs_that_verify(client: Any, filled: Store) -> None:
    sign_in(client, filled, ALICE)
    response = client.get("/privacy/v1/disclosures")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_json()
    assert [e["record"]["id"] for e in page["records"]] == [record(i)["id"] for i in (0, 2, 3, 4, 6, 7)]
    assert all(e["record"]["person"] == ALICE for e in page["records"])
    assert page["next_cursor"] is None
    signed = verified_checkpoint(client)
    assert page["checkpoint"]["tree_size"] == signed["tree_size"] == 6
    assert all(e["log"] == A for e in page["records"])
    assert [e["index"] for e in page["records"]] == [0, 1, 2, 3, 4, 5]
    root = b(signed["root_hash"])
    for entry in page["records"]:
        leaf = merkle.leaf_hash(storage.canonical(entry["record"]))
        assert b(entry["leaf_hash"]) == leaf
        proof = [b(p) for p in entry["inclusion_proof"]]
        assert merkle.verify_inclusion(entry["index"], signed["tree_size"], leaf, proof, root)
        tampered = dict(entry["record"], fields=[])
        assert not merkle.verify_inclusion(
            entry["index"], 6, merkle.leaf_hash(storage.canonical(tampered)), proof, root
        )


def test_records_after_the_latest_checkpoint_have_no_proof_yet(
    client: Any, store: Store, sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal(store, record(0))
    sequencer.run_once()
    journal(store, record(1))
    monkeypatch.setattr("broker.ledger.checkpoints.sign", lambda *a, **k: None)
    sequencer.run_once()
    sign_in(client, store, ALICE)
    entries = client.get("/privacy/v1/disclosures").get_json()["records"]
    assert [e["tree_size"] for e in entries] == [1, None]
    assert entries[1]["inclusion_proof"] is None


def test_cursor_pagination_walks_every_record_once(client: Any, filled: Store) -> None:
    sign_in(client, filled, ALICE)
    seen, cursor, pages = [], None, 0
    while True:
        url = "/privacy/v1/disclosures?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).get_json()
        seen += [num(e) for e in page["records"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [0, 2, 3, 4, 6, 7] and pages == 3


def test_filters_by_time_and_app(client: Any, filled: Store) -> None:
    sign_in(client, filled, ALICE)

    def ids(query: str) -> list[int]:
        response = client.get(f"/privacy/v1/disclosures?{query}")
        assert response.status_code == 200, response.get_json()
        return [num(e) for e in response.get_json()["records"]]

    assert ids(f"since={T0 + 20}&until={T0 + 40}") == [2, 3, 4]
    assert ids("since=2023-11-14T22:13:40Z") == [2, 3, 4, 6, 7]  # T0 + 20
    assert ids("until=2023-11-14T22:13:20") == [0]  # naive times are UTC
    assert ids(f"app={APP_B}") == [2, 6]
    assert ids(f"app={APP_B}&since={T0 + 21}") == [6]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=eyJ2IjoiMDAwIiwidCI6MSwibSI6IjAwMDAwMDAwMDAwMSJ9", "cursor"),
        ("since=yesterday", "since"),
        ("until=2023-13-01", "until"),
        (f"since={T0 + 10}&until={T0}", "until"),
        ("app=nope", "app"),
        (f"person={BOB}", "person"),
        ("format=xml", "format"),
    ],
)
def test_bad_input_is_400_naming_the_field(client: Any, filled: Store, query: str, field: str) -> None:
    sign_in(client, filled, ALICE)
    response = client.get(f"/privacy/v1/disclosures?{query}", headers={"Accept": "text/html"})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request" and list(body["errors"]) == [field]


def test_a_cursor_from_another_view_is_refused(client: Any, filled: Store) -> None:
    sign_in(client, filled, ALICE)
    cursor = client.get("/privacy/v1/disclosures?limit=1").get_json()["next_cursor"]
    response = client.get(f"/privacy/v1/disclosures?limit=1&app={APP_B}&cursor={cursor}")
    assert response.status_code == 400 and list(response.get_json()["errors"]) == ["cursor"]


def test_exports_stream_ndjson_and_csv(client: Any, filled: Store) -> None:
    sign_in(client, filled, ALICE)
    response = client.get("/privacy/v1/disclosures?format=ndjson&app=" + APP_A)
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    lines = response.get_data(as_text=True).splitlines()
    assert [int(json.loads(line)["id"][3:], 16) for line in lines] == [0, 3, 4, 7]
    assert [json.loads(line)["index"] for line in lines] == [0, 2, 3, 5]
    response = client.get("/privacy/v1/disclosures?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="disclosures.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(r["id"][3:], 16) for r in rows] == [0, 2, 3, 4, 6, 7]
    assert rows[0]["fields"] == "user_id nickname" and rows[0]["person"] == ALICE


def test_org_app_and_developer_views(filled: Store) -> None:
    def idx(page: reading.Page) -> list[int]:
        return [num(e) for e in page.records]

    none = reading.Filters()
    assert idx(reading.records_for_org(filled, ACME, none)) == [4, 5]
    assert idx(reading.records_for_org(filled, ACME, reading.Filters(person=BOB))) == [5]
    assert idx(reading.records_for_org(filled, ACME, reading.Filters(app=APP_B))) == []
    assert idx(reading.records_for_app(filled, APP_B, none)) == [2, 6]
    assert idx(reading.records_for_app(filled, APP_A, reading.Filters(person=BOB))) == [1, 5]
    # a developer's view is the union of the views of the apps they have (the registry's list)
    assert idx(reading.records_for_developer(filled, DEV, none)) == []
    filled.redis.sadd(keys.developer_apps(DEV), APP_A, APP_B)
    assert idx(reading.records_for_developer(filled, DEV, reading.Filters(app=APP_B))) == [2, 6]
    assert idx(reading.records_for_developer(filled, DEV, reading.Filters(person=BOB))) == [1, 5]
    assert idx(reading.records_for_developer(filled, DEV, none, limit=100)) == list(range(8))
    assert idx(reading.records_for_developer(filled, "usr_" + "9" * 16, none)) == []
    walked, cursor = [], None  # paging merges the apps' indexes in time order
    while True:
        page = reading.records_for_developer(filled, DEV, none, cursor, limit=3)
        walked += idx(page)
        if not (cursor := page.next_cursor):
            break
    assert walked == list(range(8))
    with pytest.raises(Exception, match="limit"):
        reading.records_for_person(filled, ALICE, none, limit=0)


def test_cursor_survives_pruning_of_its_record(filled: Store) -> None:
    first = reading.records_for_person(filled, ALICE, reading.Filters(), limit=2)
    assert [num(e) for e in first.records] == [0, 2]
    from broker.ledger.commands import prune

    assert prune(filled, T0 + 21) == 4  # indexes 0, 1, 2, 3
    rest = reading.records_for_person(filled, ALICE, reading.Filters(), first.next_cursor, 10)
    assert [num(e) for e in rest.records] == [4, 6, 7]


# -- public verification API -------------------------------------------------------------------


def test_leaf_endpoint_gives_hash_and_proof_not_the_record(client: Any, filled: Store) -> None:
    signed = verified_checkpoint(client)
    response = client.get(f"/ledger/v1/logs/{A}/leaves/2")  # record 3
    assert response.status_code == 200
    body = response.get_json()
    assert "record" not in body and body["tree_size"] == 6 and body["log"] == A
    leaf = merkle.leaf_hash(storage.canonical({**record(3, t=T0 + 20), "index": 2, "log": A}))
    assert b(body["leaf_hash"]) == leaf
    proof = [b(p) for p in body["inclusion_proof"]]
    assert merkle.verify_inclusion(2, 6, leaf, proof, b(signed["root_hash"]))
    older = client.get(f"/ledger/v1/logs/{A}/leaves/1?tree_size=3").get_json()
    assert older["tree_size"] == 3 and older["checkpoint"] is None
    assert client.get(f"/ledger/v1/logs/{A}/leaves/6").status_code == 404
    assert client.get("/ledger/v1/logs/99/leaves/0").status_code == 404  # no such log
    assert client.get("/ledger/v1/leaves/0").status_code == 404  # the legacy log: empty here
    response = client.get(f"/ledger/v1/logs/{A}/leaves/1?tree_size=99")
    assert response.status_code == 400 and list(response.get_json()["errors"]) == ["tree_size"]


def test_consistency_between_checkpoints_verifies(client: Any, filled: Store) -> None:
    listed = client.get(f"/ledger/v1/logs/{A}/checkpoints").get_json()
    assert listed["total"] == 2 and listed["next"] is None
    first, second = listed["checkpoints"]
    assert (first["tree_size"], second["tree_size"]) == (2, 6)
    assert first["log"] == second["log"] == A
    body = client.get(f"/ledger/v1/logs/{A}/consistency?first=2&second=6").get_json()
    proof = [b(p) for p in body["consistency_proof"]]
    assert merkle.verify_consistency(2, 6, b(first["root_hash"]), b(second["root_hash"]), proof)
    page = client.get(f"/ledger/v1/logs/{A}/checkpoints?start=1&limit=1").get_json()
    assert [c["tree_size"] for c in page["checkpoints"]] == [6] and page["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("first=0&second=3", "first"),
        ("first=4&second=3", "first"),
        ("first=1&second=7", "second"),
        ("second=3", "first"),
        ("first=a&second=3", "first"),
    ],
)
def test_consistency_bad_input_is_400(client: Any, filled: Store, query: str, field: str) -> None:
    response = client.get(f"/ledger/v1/logs/{A}/consistency?{query}")
    assert response.status_code == 400 and list(response.get_json()["errors"]) == [field]


def test_empty_ledger_has_no_checkpoint(client: Any, store: Store) -> None:
    response = client.get(f"/ledger/v1/logs/{A}/checkpoints/latest")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert client.get(f"/ledger/v1/logs/{A}/leaves/0").status_code == 404
    assert client.get(f"/ledger/v1/logs/{A}/checkpoints?limit=0").status_code == 400


def test_a_page_of_proofs_is_prefetched_in_one_pipeline(
    filled: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    single: list[tuple[int, int]] = []
    original = storage.read_hashes

    def counting(store: Store, log: str, level: int, start: int, stop: int) -> Any:
        single.append((level, start))
        return original(store, log, level, start, stop)

    monkeypatch.setattr(storage, "read_hashes", counting)
    page = reading.records_for_person(filled, ALICE, reading.Filters())
    assert len(page.records) == 6 and all(e["inclusion_proof"] is not None for e in page.records)
    assert single == []  # no hash was read on its own: the page's are fetched in one pipeline


def test_redis_failure_is_503_json_without_data(
    client: Any, filled: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    sign_in(client, filled, ALICE)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(filled.redis, "pipeline", down)
    response = client.get("/privacy/v1/disclosures", headers={"Accept": "text/html"})
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    body = response.get_json()
    assert body["error"] == "temporarily_unavailable" and "records" not in body


def test_missing_subtree_hash_is_a_logged_json_500(client: Any, filled: Store) -> None:
    filled.redis.delete(keys.ledger_hashes(0, A))  # the leaf hashes (the inner ones are computed from them)
    response = client.get(f"/ledger/v1/logs/{A}/leaves/0", headers={"Accept": "text/html"})
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json" and response.get_json()["error"] == "server_error"


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_newest_first_walks_every_record_once_backwards(client: Any, filled: Store, limit: int) -> None:
    """``order=newest`` (the consoles' history pages): the same records in reverse, across pages and
    across a tie (records 2 and 3 share a time), filters applied, in one log and across logs."""
    sign_in(client, filled, ALICE)

    def walk(query: str) -> list[int]:
        seen, cursor = [], None
        while True:
            url = f"/privacy/v1/disclosures?order=newest&limit={limit}&{query}" + (
                f"&cursor={cursor}" if cursor else ""
            )
            response = client.get(url)
            assert response.status_code == 200, response.get_json()
            seen += [num(e) for e in response.get_json()["records"]]
            cursor = response.get_json()["next_cursor"]
            if not cursor:
                return seen

    assert walk("") == [7, 6, 4, 3, 2, 0]
    assert walk(f"since={T0 + 20}&until={T0 + 50}") == [6, 4, 3, 2]
    assert walk(f"app={APP_B}") == [6, 2]

    def across_logs(cursor: str | None = None, seen: list[int] | None = None) -> list[int]:
        seen = seen or []
        page = reading.records_for_app(filled, APP_A, reading.Filters(newest_first=True), cursor, limit)
        seen += [num(e) for e in page.records]
        return across_logs(page.next_cursor, seen) if page.next_cursor else seen

    assert across_logs() == [7, 5, 4, 3, 1, 0]  # Alice's log and Bob's, merged by time


def test_a_cursor_of_one_order_is_refused_by_the_other(client: Any, filled: Store) -> None:
    sign_in(client, filled, ALICE)
    oldest = client.get("/privacy/v1/disclosures?limit=1").get_json()["next_cursor"]
    refused = client.get(f"/privacy/v1/disclosures?limit=1&order=newest&cursor={oldest}")
    assert refused.status_code == 400 and list(refused.get_json()["errors"]) == ["cursor"]
    bad = client.get("/privacy/v1/disclosures?order=sideways")
    assert bad.status_code == 400 and list(bad.get_json()["errors"]) == ["order"]


@pytest.mark.parametrize("newest", [False, True])
def test_a_filtered_read_stops_at_its_budget_and_its_cursor_goes_on(
    store: Store, sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch, newest: bool
) -> None:
    """A filter answered from a person's or an org's view (the person's records of one app, an app's
    about one person, an org's of one app) looks at most SCAN_BUDGET entries per page and view: a page
    may come back short, never wrong, and its cursor goes on from where it stopped looking."""
    for n in range(30):
        journal(store, record(n, t=T0 + n, app=APP_A if n % 10 == 0 else APP_B, org=ACME))
    sequencer.run_once()
    monkeypatch.setattr(reading, "SCAN_BUDGET", 4)
    for read in (
        lambda f, c: reading.records_for_person(store, ALICE, f, c, limit=2),
        lambda f, c: reading.records_for_app(store, APP_A, replace(f, app=None, person=ALICE), c, limit=2),
        lambda f, c: reading.records_for_org(store, ACME, f, c, limit=2),  # the org's view, by app code
    ):
        filters = reading.Filters(app=APP_A, newest_first=newest)
        pages: list[list[int]] = []
        cursor = None
        while True:
            page = read(filters, cursor)
            pages.append([num(e) for e in page.records])
            if not (cursor := page.next_cursor):
                break
        assert [n for p in pages for n in p] == ([20, 10, 0] if newest else [0, 10, 20])
        assert [] in pages  # a page that stopped looking before it found one: short, not wrong
        assert len(pages) <= 30 // 4 + 2
