"""Record bodies (``broker.ledger.bodies``): every stored form gives back the exact canonical JSON
(the leaf data), a record of the gate's shape takes the compact binary form, anything else a form
that still gives it back, and a body in no form is refused."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ledger import bodies


def _hex() -> str:
    return secrets.token_hex(8)


def gate_record(org: bool) -> dict[str, Any]:
    """A record as the gate and the sequencer write it."""
    request = _hex()
    return {
        "app": "app_" + _hex(), "audience": "organization" if org else "individual",
        "catalog_version": _hex(), "developer": "usr_" + _hex(),
        "endpoint": "GET /v1/orgs/{org_id}/members" if org else "GET /v1/me",
        "fields": ["user_id", "nickname"], "grant": ("in_" if org else "gr_") + _hex(),
        "id": f"{request}-{secrets.randbelow(100) + 1}", "index": secrets.randbelow(10**7),
        "log": f"{secrets.randbelow(16):02d}", "org": "org_" + _hex() if org else None,
        "person": "usr_" + _hex(), "request_id": request,
        "time": 1_764_000_000 + secrets.randbelow(10**6) / 997,
    }  # fmt: skip


@pytest.mark.parametrize("org", [False, True])
def test_a_gate_record_takes_the_binary_form_at_a_quarter_of_its_json(org: bool) -> None:
    for _ in range(50):
        body = bodies.canonical(gate_record(org))
        packed = bodies.pack(body)
        assert packed[:1] == bodies.FIELDS
        assert len(packed) < 100 and len(packed) < len(body) / 4
        assert bodies.unpack(packed) == body


def test_a_correction_record_and_a_delivered_false_one_round_trip() -> None:
    original = gate_record(True)
    correction = {**original, "id": _hex() + "-1", "corrects": original["id"], "corrects_index": 41,
                  "delivered": False}  # fmt: skip
    for record in (original, correction):
        body = bodies.canonical(record)
        assert bodies.unpack(bodies.pack(body)) == body


@pytest.mark.parametrize(
    "record",
    [
        {"app": "app_" + "A" * 16, "time": 1},  # upper-case hex: a plain string
        {"id": "0123456789abcdef-01", "time": 1.5},  # a leading zero the id form cannot keep
        {"fields": [["nested"]], "time": 2},  # a nested list
        {"time": 10**30},  # an integer too large for the binary form
        {"unknown_key": "x", "time": 3},  # a key not in the table: DEFLATE
        {"org": {"name": "x"}},  # an object inside
        {"endpoint": "GET /v1/me ünïcode", "time": -5, "index": -1, "delivered": True},
    ],
)
def test_any_other_shape_is_stored_in_a_form_that_gives_it_back(record: dict[str, Any]) -> None:
    body = bodies.canonical(record)
    assert bodies.unpack(bodies.pack(body)) == body


_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.from_regex(r"(app_|usr_|org_|gr_|in_)?[0-9a-f]{16}(-[0-9]{1,3})?", fullmatch=True),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["app", "id", "time", "fields", "endpoint", "org", "x", "index"]),
                       st.one_of(_scalar, st.lists(_scalar, max_size=4)), max_size=8))  # fmt: skip
def test_every_json_object_round_trips_exactly(record: dict[str, Any]) -> None:
    body = bodies.canonical(record)
    packed = bodies.pack(body)
    assert bodies.unpack(packed) == body
    assert len(packed) <= len(body)


@pytest.mark.parametrize(
    "raw", [b"", b"\x00abc", b"\x01not deflate", b"\x02\x63", b"\x02\x00\x63", b"\x02\x00\x08\x09"]
)
def test_a_body_in_no_form_is_refused(raw: bytes) -> None:
    with pytest.raises(bodies.Unreadable):
        bodies.unpack(raw)


def test_the_plain_form_is_the_json_itself() -> None:
    body = json.dumps({"a": 1}).encode()
    assert bodies.unpack(body) == body
