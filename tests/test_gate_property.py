"""Property: whatever the catalog, the grant and the token scopes, a response never holds a field
outside token scopes ∩ grant scopes ∩ ticked fields ∩ catalog-shareable (DESIGN invariant 3)."""

from __future__ import annotations

import secrets

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from broker.core.catalog import Catalog, Field, Scope
from broker.gate.disclosure import Gate, InsufficientScope
from tests.support.factories import make_token, make_user, raw_app, raw_grant

FIELD_NAMES = ["user_id", "nickname", "avatar", "name", "email", "mobile", "title", "dept"]
SCOPE_NAMES = ["openid", "profile", "work", "contact", "extra"]


@st.composite
def catalogs(draw):
    fields = {}
    for name in FIELD_NAMES:
        shareable = name == "user_id" or draw(st.booleans())
        basic = shareable and draw(st.booleans())
        fields[name] = Field(
            name=name,
            sensitivity="low",
            shareable=shareable,
            basic=basic,
            required=False,
            description={"en": name, "zh": name},
        )
    scopes = {}
    for name in SCOPE_NAMES:
        # the gate must hold even for a catalog that lists non-shareable fields in a scope
        members = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=5, unique=True))
        if name == "openid" and "user_id" not in members:
            members.append("user_id")
        scopes[name] = Scope(
            name=name,
            audience="individual",
            fields=tuple(members),
            separate_consent=draw(st.booleans()),
            description={"en": name, "zh": name},
        )
    return Catalog(fields=fields, scopes=scopes, version="prop", files=())


subsets = st.lists(st.sampled_from([*SCOPE_NAMES, "unknown"]), unique=True)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    catalog=catalogs(),
    grant_scopes=subsets,
    token_scopes=subsets,
    ticked=st.lists(st.sampled_from(FIELD_NAMES), unique=True),
)
def test_response_never_exceeds_the_allowed_set(
    store, settings, catalog, grant_scopes, token_scopes, ticked
) -> None:
    gate = Gate(store, catalog, settings.token_hash_key, settings.pairwise_key)
    uid = make_user(store, title="CEO", dept="Sales")
    cid = raw_app(store)
    gid = raw_grant(store, cid, uid, " ".join(grant_scopes), " ".join(ticked))
    token = make_token(
        store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes=" ".join(token_scopes)
    )

    effective = set(grant_scopes) & set(token_scopes)
    allowed = {
        f
        for s in effective
        if s in catalog.scopes
        for f in catalog.scopes[s].fields
        if catalog.fields[f].shareable
    } & set(ticked)
    try:
        disclosed = gate.authorize_and_record(
            token, kind="grant", required_scope="openid", endpoint="prop", request_id=secrets.token_hex(4)
        )
    except InsufficientScope:
        assert "openid" not in effective
        return
    assert "openid" in effective
    [profile] = gate.profiles(disclosed, [uid])
    assert set(profile) == allowed
    assert set(disclosed.fields) == allowed
    assert not set(profile) & {f for f, d in catalog.fields.items() if not d.shareable}
