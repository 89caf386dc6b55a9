"""Departments (issue 13, item 1): a tree per organization through the platform API, members in
departments, an installation limited to chosen departments, and the members API that returns exactly
the members it covers (moving a member out takes effect on the next request, with events)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin
from broker.core import catalog as catalog_mod
from broker.core.pairwise import pairwise_id
from broker.directory import departments
from broker.directory import service as directory
from broker.errors import Conflict, ValidationFailed
from broker.storage import keys
from tests.support.apps import org_payload, outbox_events
from tests.support.factories import installation_token, make_org, make_user

UNKNOWN_DEP = "dep_00000000000000ff"


@pytest.fixture
def w(store, settings) -> dict[str, Any]:
    people = {n: make_user(store, username=n, nickname=n.capitalize()) for n in ("ann", "bob", "cid", "dee")}
    oid = make_org(store, list(people.values()), name="Acme")
    other = make_org(store, [people["ann"]], name="Other")
    catalog = catalog_mod.load(settings.scopes_dir)
    record, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(make_user(store)))
    return {"oid": oid, "other": other, "client_id": record["client_id"], **people}


def _h(settings: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.platform_api_key}"}


def _dep(client: Any, settings: Any, oid: str, name: str, parent: str | None = None) -> str:
    body: dict[str, Any] = {"name": name}
    if parent:
        body["parent"] = parent
    resp = client.post(f"/internal/v1/orgs/{oid}/departments", json=body, headers=_h(settings))
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Location"].endswith(resp.get_json()["id"])
    return str(resp.get_json()["id"])


def _put(client: Any, settings: Any, oid: str, uid: str, deps: list[str]) -> Any:
    return client.put(
        f"/internal/v1/orgs/{oid}/members/{uid}/departments", json={"departments": deps}, headers=_h(settings)
    )


def _page_ids(client: Any, oid: str, token: str, limit: int = 50) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        resp = client.get(f"/v1/orgs/{oid}/members{query}", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        out += [m["user_id"] for m in body["members"]]
        cursor = body["next_cursor"]
        if not cursor:
            return out


def _token(store: Any, settings: Any, w: dict[str, Any]) -> str:
    return installation_token(store, settings, w["client_id"], w["oid"], "org.members.read")


def test_the_tree_is_built_renamed_moved_and_deleted_through_the_platform_api(
    client, store, settings, w
) -> None:
    oid, h = w["oid"], _h(settings)
    eng = _dep(client, settings, oid, "Engineering")
    web = _dep(client, settings, oid, "Web", eng)
    sales = _dep(client, settings, oid, "Sales")
    listed = client.get(f"/internal/v1/orgs/{oid}/departments", headers=h).get_json()["departments"]
    assert [(d["name"], d["depth"], d["parent"]) for d in listed] == [
        ("Engineering", 0, None),
        ("Web", 1, eng),
        ("Sales", 0, None),
    ]
    assert listed[1]["path"] == "Engineering / Web"

    renamed = client.patch(f"/internal/v1/orgs/{oid}/departments/{web}", json={"name": "Frontend"}, headers=h)
    assert renamed.status_code == 200 and renamed.get_json() == {"id": web, "name": "Frontend", "parent": eng}
    moved = client.patch(f"/internal/v1/orgs/{oid}/departments/{web}", json={"parent": sales}, headers=h)
    assert moved.get_json()["parent"] == sales
    top = client.patch(f"/internal/v1/orgs/{oid}/departments/{web}", json={"parent": None}, headers=h)
    assert top.get_json()["parent"] is None

    assert _put(client, settings, oid, w["ann"], [web, sales]).get_json()["departments"] == [web, sales]
    got = client.get(f"/internal/v1/orgs/{oid}/departments/{web}", headers=h).get_json()
    assert got["members"] == [w["ann"]] and got["name"] == "Frontend"
    counts = {
        d["id"]: d["members"]
        for d in client.get(f"/internal/v1/orgs/{oid}/departments", headers=h).get_json()["departments"]
    }
    assert counts == {eng: 0, web: 1, sales: 1}

    assert client.delete(f"/internal/v1/orgs/{oid}/departments/{web}", headers=h).status_code == 204
    assert client.get(f"/internal/v1/orgs/{oid}/members/{w['ann']}/departments", headers=h).get_json()[
        "departments"
    ] == [sales]
    assert client.get(f"/internal/v1/orgs/{oid}/departments/{web}", headers=h).status_code == 404
    trail = [e["what"] for e in org_admin.audit_trail(store, oid)]
    assert trail[:2] == ["department.deleted", "member.departments"] and "department.changed" in trail


def test_cycles_bad_input_and_unknown_ids_are_refused_and_change_nothing(client, store, settings, w) -> None:
    oid, h = w["oid"], _h(settings)
    a = _dep(client, settings, oid, "A")
    b = _dep(client, settings, oid, "B", a)
    c = _dep(client, settings, oid, "C", b)
    before = store.redis.hgetall(keys.org_departments(oid))

    for target, parent in ((a, c), (a, b), (a, a)):
        resp = client.patch(
            f"/internal/v1/orgs/{oid}/departments/{target}", json={"parent": parent}, headers=h
        )
        assert resp.status_code == 400 and "sub-departments" in resp.get_json()["errors"]["parent"][0]
    # a refused move with a rename renames nothing either
    both = client.patch(
        f"/internal/v1/orgs/{oid}/departments/{a}", json={"parent": c, "name": "X"}, headers=h
    )
    assert both.status_code == 400
    bad = [
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": "Ok", "parent": "nope"}, "parent"),
        ({"name": "Ok", "parent": UNKNOWN_DEP}, "parent"),
        ({"name": "Ok", "colour": "red"}, "colour"),
        ({}, "name"),
    ]
    for body, field in bad:
        resp = client.post(f"/internal/v1/orgs/{oid}/departments", json=body, headers=h)
        assert resp.status_code == 400 and field in resp.get_json()["errors"], (body, resp.get_json())
    assert client.patch(f"/internal/v1/orgs/{oid}/departments/{a}", json={}, headers=h).status_code == 400
    assert client.delete(f"/internal/v1/orgs/{oid}/departments/{a}", headers=h).status_code == 409
    assert store.redis.hgetall(keys.org_departments(oid)) == before

    for path in (f"departments/{UNKNOWN_DEP}", "departments/dep_x", f"members/{w['ann']}/departments"):
        missing = client.get(f"/internal/v1/orgs/{w['other']}/{path}", headers=h)
        assert missing.status_code == 404 or path.startswith("members")
    assert (
        client.patch(
            f"/internal/v1/orgs/{oid}/departments/{UNKNOWN_DEP}", json={"name": "Z"}, headers=h
        ).status_code
        == 404
    )
    assert client.delete(f"/internal/v1/orgs/{oid}/departments/{UNKNOWN_DEP}", headers=h).status_code == 404
    assert client.get("/internal/v1/orgs/org_00000000000000ff/departments", headers=h).status_code == 404

    # members: unknown or other-org departments refused, a non-member is 404, nothing changes
    other_dep = _dep(client, settings, w["other"], "Elsewhere")
    for deps in ([UNKNOWN_DEP], [other_dep], ["bad"], [a] * 51):
        assert _put(client, settings, oid, w["bob"], deps).status_code == 400
    outsider = make_user(store, username="outsider")
    assert _put(client, settings, oid, outsider, [a]).status_code == 404
    assert store.redis.hgetall(keys.org_member_departments(oid)) == {}


def test_an_installation_limited_to_a_department_pages_exactly_its_members(
    client, store, settings, w
) -> None:
    oid, h, cid = w["oid"], _h(settings), w["client_id"]
    eng = _dep(client, settings, oid, "Engineering")
    web = _dep(client, settings, oid, "Web", eng)
    sales = _dep(client, settings, oid, "Sales")
    _put(client, settings, oid, w["ann"], [eng])
    _put(client, settings, oid, w["bob"], [web])  # a sub-department counts
    _put(client, settings, oid, w["cid"], [sales])

    refused = client.post(
        f"/internal/v1/orgs/{oid}/installations",
        json={"client_id": cid, "departments": [UNKNOWN_DEP]},
        headers=h,
    )
    assert refused.status_code == 400 and "departments" in refused.get_json()["errors"]
    assert inst_svc.get_installation(store, cid, oid) is None
    assert not store.redis.exists(keys.org_coverage_config(oid))

    made = client.post(
        f"/internal/v1/orgs/{oid}/installations", json={"client_id": cid, "departments": [eng]}, headers=h
    )
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["departments"] == [eng] and made.get_json()["covered_members"] == 2
    token = _token(store, settings, w)
    pw = {
        uid: pairwise_id(settings.pairwise_key, cid, uid, oid)
        for uid in (w["ann"], w["bob"], w["cid"], w["dee"])
    }
    assert _page_ids(client, oid, token) == [pw[w["ann"]], pw[w["bob"]]]
    assert _page_ids(client, oid, token, limit=1) == [pw[w["ann"]], pw[w["bob"]]]
    one = client.get(f"/v1/orgs/{oid}/members/{pw[w['bob']]}", headers={"Authorization": f"Bearer {token}"})
    assert one.status_code == 200

    start = len(outbox_events(store, cid))
    # bob moves out of the covered subtree: gone from the next page and from the one-member read
    assert _put(client, settings, oid, w["bob"], [sales]).status_code == 200
    assert _page_ids(client, oid, token) == [pw[w["ann"]]]
    one = client.get(f"/v1/orgs/{oid}/members/{pw[w['bob']]}", headers={"Authorization": f"Bearer {token}"})
    assert one.status_code == 404
    # cid comes in; moving Sales under Engineering brings bob back too
    _put(client, settings, oid, w["cid"], [eng])
    client.patch(f"/internal/v1/orgs/{oid}/departments/{sales}", json={"parent": eng}, headers=h)
    assert _page_ids(client, oid, token) == [pw[w["ann"]], pw[w["bob"]], pw[w["cid"]]]
    events = [(e["type"], e["data"]["user_id"]) for e in outbox_events(store, cid)[start:]]
    assert events == [
        ("member.removed", pw[w["bob"]]),
        ("member.added", pw[w["cid"]]),
        ("member.added", pw[w["bob"]]),
    ]

    # whole org again, then back to one department: installation.updated each time, members follow
    start = len(outbox_events(store, cid))
    whole = client.patch(
        f"/internal/v1/orgs/{oid}/installations/{cid}", json={"departments": None}, headers=h
    )
    assert whole.status_code == 200 and whole.get_json()["departments"] is None
    assert whole.get_json()["covered_members"] == 4
    assert len(_page_ids(client, oid, token)) == 4
    narrowed = client.patch(
        f"/internal/v1/orgs/{oid}/installations/{cid}", json={"departments": [web]}, headers=h
    )
    assert narrowed.get_json()["covered_members"] == 0
    assert _page_ids(client, oid, token) == []  # never fail open
    kinds = [
        (e["type"], e["data"].get("departments", e["data"].get("user_id")))
        for e in outbox_events(store, cid)[start:]
    ]
    assert kinds[0] == ("installation.updated", None) and ("member.added", pw[w["dee"]]) in kinds
    assert ("installation.updated", [web]) in kinds
    assert sorted(k[1] for k in kinds if k[0] == "member.removed") == sorted(pw.values())

    # deleting the only chosen department leaves it covering nobody, not the whole org
    client.patch(f"/internal/v1/orgs/{oid}/installations/{cid}", json={"departments": [sales]}, headers=h)
    assert _page_ids(client, oid, token) == [pw[w["bob"]]]  # cid is in Engineering itself
    _put(client, settings, oid, w["bob"], [])
    assert client.delete(f"/internal/v1/orgs/{oid}/departments/{sales}", headers=h).status_code == 204
    assert _page_ids(client, oid, token) == []
    inst = client.get(f"/internal/v1/orgs/{oid}/installations/{cid}", headers=h).get_json()
    assert inst["departments"] == [] and inst["covered_members"] == 0


def test_member_events_follow_coverage_and_nothing_is_left_behind(client, store, settings, w) -> None:
    oid, h, cid = w["oid"], _h(settings), w["client_id"]
    eng = _dep(client, settings, oid, "Engineering")
    _put(client, settings, oid, w["ann"], [eng])
    client.post(
        f"/internal/v1/orgs/{oid}/installations", json={"client_id": cid, "departments": [eng]}, headers=h
    )
    start = len(outbox_events(store, cid))
    newcomer = make_user(store, username="newcomer")
    assert (
        client.put(
            f"/internal/v1/orgs/{oid}/members/{newcomer}", json={"role": "member"}, headers=h
        ).status_code
        == 201
    )
    assert client.delete(f"/internal/v1/orgs/{oid}/members/{w['bob']}", headers=h).status_code == 204
    assert outbox_events(store, cid)[start:] == []  # neither was covered: the app learns nothing
    assert client.delete(f"/internal/v1/orgs/{oid}/members/{w['ann']}", headers=h).status_code == 204
    removed = outbox_events(store, cid)[start:]
    assert [(e["type"], e["data"]["user_id"]) for e in removed] == [
        ("member.removed", pairwise_id(settings.pairwise_key, cid, w["ann"], oid))
    ]
    assert not store.redis.hexists(keys.org_member_departments(oid), w["ann"])
    assert store.redis.zcard(keys.org_coverage(oid, cid)) == 0

    # removing the installation forgets its coverage; disbanding forgets the tree
    _put(client, settings, oid, w["cid"], [eng])
    assert store.redis.zcard(keys.org_coverage(oid, cid)) == 1
    assert client.delete(f"/internal/v1/orgs/{oid}/installations/{cid}", headers=h).status_code == 204
    assert not store.redis.exists(keys.org_coverage(oid, cid))
    assert not store.redis.hexists(keys.org_coverage_config(oid), cid)
    client.post(
        f"/internal/v1/orgs/{oid}/installations", json={"client_id": cid, "departments": [eng]}, headers=h
    )
    assert client.delete(f"/internal/v1/orgs/{oid}", headers=h).status_code == 204
    assert store.redis.keys(f"{keys.org_tag(oid)}*") == []


def _import(client: Any, settings: Any, lines: list[dict[str, Any]]) -> Any:
    body = "\n".join(json.dumps(line) for line in lines)
    return client.post(
        "/internal/v1/import", data=body, content_type="application/x-ndjson", headers=_h(settings)
    )


def test_import_lines_create_departments_and_place_members_all_or_nothing(client, store, settings, w) -> None:
    oid, cid, h = "org_00000000000000d1", w["client_id"], _h(settings)
    eng, web, sales = "dep_00000000000000e1", "dep_00000000000000e2", "dep_00000000000000e3"
    good = [
        {"type": "user", "username": "erin"},
        {"type": "org", "id": oid, "name": "Imported"},
        {"type": "department", "org_id": oid, "id": web, "name": "Web", "parent": eng},  # parent below
        {"type": "department", "org_id": oid, "id": eng, "name": "Engineering"},
        {"type": "membership", "org_id": oid, "username": "erin", "role": "member", "departments": [web]},
    ]
    bad_sets = [
        ({"type": "department", "org_id": oid, "id": eng, "name": "Again"}, "id"),
        ({"type": "department", "org_id": oid, "id": sales, "name": "S", "parent": sales}, "parent"),
        (
            {"type": "department", "org_id": oid, "id": sales, "name": "S", "parent": "dep_00000000000000ff"},
            "parent",
        ),
        ({"type": "department", "org_id": "org_00000000000000ff", "id": sales, "name": "S"}, "org_id"),
        ({"type": "department", "org_id": oid, "id": "nope", "name": "S"}, "id"),
        ({"type": "department", "org_id": oid, "id": sales, "name": "   "}, "name"),
        (
            {
                "type": "membership",
                "org_id": oid,
                "username": "erin",
                "role": "member",
                "departments": [sales],
            },
            "departments",
        ),
    ]
    for extra, field in bad_sets:
        resp = _import(client, settings, [*good, extra])
        assert resp.status_code == 400, extra
        assert field in resp.get_json()["errors"][str(len(good) + 1)], (extra, resp.get_json())
        assert not store.redis.exists(keys.org(oid))  # nothing was imported
    # a cycle among new lines is refused too
    cycle = [
        {"type": "org", "id": oid, "name": "Imported"},
        {"type": "department", "org_id": oid, "id": eng, "name": "E", "parent": web},
        {"type": "department", "org_id": oid, "id": web, "name": "W", "parent": eng},
    ]
    refused = _import(client, settings, cycle)
    assert refused.status_code == 400 and "cycle" in json.dumps(refused.get_json()["errors"])

    done = _import(client, settings, good)
    assert done.status_code == 200 and done.get_json()["imported"]["departments"] == 2
    listed = client.get(f"/internal/v1/orgs/{oid}/departments", headers=h).get_json()["departments"]
    assert [(d["id"], d["path"]) for d in listed] == [(eng, "Engineering"), (web, "Engineering / Web")]
    erin = client.get("/internal/v1/users/by-username/erin", headers=h).get_json()["id"]
    assert client.get(f"/internal/v1/orgs/{oid}/members/{erin}/departments", headers=h).get_json()[
        "departments"
    ] == [web]

    # a later import moves an existing member: an app limited to Engineering is told
    client.post(
        f"/internal/v1/orgs/{oid}/installations", json={"client_id": cid, "departments": [eng]}, headers=h
    )
    start = len(outbox_events(store, cid))
    moved = _import(
        client,
        settings,
        [
            {"type": "department", "org_id": oid, "id": sales, "name": "Sales"},
            {"type": "membership", "org_id": oid, "user_id": erin, "role": "member", "departments": [sales]},
        ],
    )
    assert moved.status_code == 200
    assert [(e["type"], e["data"]["user_id"]) for e in outbox_events(store, cid)[start:]] == [
        ("member.removed", pairwise_id(settings.pairwise_key, cid, erin, oid))
    ]


def test_deleting_the_app_forgets_its_departments_in_every_org(client, store, settings, w) -> None:
    oid, cid, h = w["oid"], w["client_id"], _h(settings)
    eng = _dep(client, settings, oid, "Engineering")
    _put(client, settings, oid, w["ann"], [eng])
    made = client.post(
        f"/internal/v1/orgs/{oid}/installations", json={"client_id": cid, "departments": [eng]}, headers=h
    )
    assert made.status_code == 201 and store.redis.zcard(keys.org_coverage(oid, cid)) == 1
    assert client.delete(f"/internal/v1/apps/{cid}", headers=h).status_code == 204
    assert not store.redis.exists(keys.org_coverage(oid, cid))
    assert not store.redis.hexists(keys.org_coverage_config(oid), cid)
    assert _put(client, settings, oid, w["bob"], [eng]).status_code == 200  # nothing stale in the way


def _expected(store: Any, oid: str, client_id: str) -> set[str]:
    """Coverage computed the slow, obvious way: members with a department at or below a chosen one."""
    tree = departments.tree(store, oid)
    chosen = set(departments.installation_departments(store, oid, client_id) or [])

    def under(dep: str) -> bool:
        seen = set()
        while dep and dep not in seen:
            if dep in chosen:
                return True
            seen.add(dep)
            dep = tree.get(dep, {}).get("parent", "")
        return False

    members = set(store.redis.zrange(keys.org_members(oid), 0, -1))
    return {
        uid
        for uid, deps in departments.all_member_departments(store, oid).items()
        if uid in members and any(under(d) for d in deps)
    }


def test_coverage_always_matches_the_tree_under_random_changes(store, settings, w) -> None:
    """Random creates, moves (some refused as cycles), deletes, placements, choices and removals:
    after each, every limited installation's coverage set is exactly what the tree says, and the
    reported changes add up to it."""
    rng = random.Random(1303)
    oid = w["oid"]
    people = [w[n] for n in ("ann", "bob", "cid", "dee")] + [
        make_user(store, username=f"p{i}") for i in range(8)
    ]
    for uid in people[4:]:
        directory.add_member(store, oid, uid)
    clients = ["app_00000000000000a1", "app_00000000000000a2"]
    seen: dict[str, set[str]] = {}
    deps: list[str] = []
    done: dict[str, int] = {}
    largest = 0
    for step in range(160):
        op = rng.choice(["create", "create", "move", "delete", "assign", "assign", "limit", "remove"])
        changes: list[departments.Change] = []
        try:
            if op == "create" or not deps:
                deps.append(departments.create(store, oid, f"d{step}", rng.choice([None, *deps]))["id"])
            elif op == "move":
                changes = departments.move(store, oid, rng.choice(deps), rng.choice([None, *deps]))
            elif op == "delete":
                victim = rng.choice(deps)
                changes = departments.delete(store, oid, victim)
                deps.remove(victim)
            elif op == "assign":
                uid = rng.choice(people)
                if directory.is_member(store, oid, uid):
                    changes = departments.assign(
                        store, oid, uid, rng.sample(deps, rng.randint(0, min(3, len(deps))))
                    )
            elif op == "limit":
                client = rng.choice(clients)
                choice = rng.sample(deps, rng.randint(1, min(2, len(deps)))) if rng.random() < 0.8 else None
                if client not in seen:  # first limit: it saw the whole org before
                    seen[client] = set(store.redis.zrange(keys.org_members(oid), 0, -1))
                changes = departments.set_coverage(store, oid, client, choice)
            elif op == "remove":
                uid = rng.choice(people)
                if directory.is_member(store, oid, uid):
                    left = directory.remove_member(store, oid, uid)
                    changes = [departments.Change(c, (), (uid,)) for c in left]
                    for client, view in seen.items():  # a whole-org one is told by announce_member
                        if departments.installation_departments(store, oid, client) is None:
                            view.discard(uid)
        except (ValidationFailed, Conflict):
            done["refused"] = done.get("refused", 0) + 1
            continue  # a cycle, a department with sub-departments: refused, nothing changed
        done[op] = done.get(op, 0) + 1
        for change in changes:
            view = seen.setdefault(change.client_id, set(store.redis.zrange(keys.org_members(oid), 0, -1)))
            assert not set(change.added) & view and set(change.removed) <= view, (step, op)
            view |= set(change.added)
            view -= set(change.removed)
        for client in clients:
            if departments.installation_departments(store, oid, client) is None:
                continue
            actual = set(store.redis.zrange(keys.org_coverage(oid, client), 0, -1))
            assert actual == _expected(store, oid, client), (step, op)
            assert seen[client] == actual, (step, op)
            largest = max(largest, len(actual))
    # the walk did exercise the interesting paths
    assert done["refused"] and done["move"] >= 5 and done["delete"] and done["remove"] and largest >= 3
