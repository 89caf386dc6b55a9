"""Explain: which fields an app receives about a person, and why; which it does not, and why
(issue 14, item 2).

The released fields come from the gate's own rule: ``gate_explain.lua`` runs ``released_fields``
(``broker/storage/lua/_fields.lua``), the function ``gate_disclose.lua`` applies to every request,
on the stored grant or installation, for a request carrying every scope the app registered. The
reasons around it (the catalog, the app's request, the person's choices, the organization's policy,
suspension and switch-off) are facts read beside it, each given as a code and its words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.consent import org_policy
from broker.core.catalog import Catalog
from broker.gate.disclosure import _scope_fields
from broker.storage import keys
from broker.storage.store import Store

# Why a field is, or is not, released: code -> what it means (pages translate the codes).
REASONS = {
    "requested": "the app asks for it",
    "granted": "you allowed it",
    "installed": "the organization's admin added the app with it",
    "never_shared": "the platform never shares it with apps",
    "not_requested": "the app does not ask for it",
    "scope_not_granted": "you did not allow what it belongs to",
    "unticked": "you left it out when you allowed the app",
    "separate_consent_not_given": "it needs your separate consent, which you did not give",
    "not_in_installation": "the organization's admin did not choose it",
    "app_suspended": "the platform operator has suspended the app",
    "switched_off": "the organization has switched the app off",
    "no_grant": "you have not allowed the app",
    "not_installed": "the organization has not added the app",
    "org_policy": "your organization does not allow this app",
}


@dataclass
class FieldExplanation:
    name: str
    released: bool
    reasons: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"field": self.name, "released": self.released, "reasons": list(self.reasons)}


def _run(store: Store, catalog: Catalog, client_id: str, owner_key: str, kind: str) -> dict[str, Any]:
    raw = store.lua("gate_explain")(
        keys=[keys.app(client_id), owner_key], args=[_scope_fields(catalog), kind]
    )
    facts: dict[str, Any] = json.loads(raw)
    for name in ("released_scopes", "released_fields"):  # cjson writes an empty list as {}
        if not isinstance(facts.get(name), list):
            facts[name] = []
    return facts


def _explain(
    catalog: Catalog,
    facts: dict[str, Any],
    audience: str,
    released_because: list[str],
    why_not: Callable[[str, set[str]], list[str]],
) -> list[FieldExplanation]:
    """Every catalog field in catalog order: released (per the gate's rule, in ``facts``) with
    ``released_because``, or the first reason it is not; ``why_not`` decides past the checks every
    kind shares (shareable, asked for through a scope of this ``audience``, app active)."""
    app_scopes = set(facts["app_scopes"].split())
    released = set(facts["released_fields"])
    out = []
    for name, spec in catalog.fields.items():
        reachable = {
            s
            for s in app_scopes
            if s in catalog.scopes
            and catalog.scopes[s].audience == audience
            and name in catalog.fields_of([s])
        }
        row = FieldExplanation(name, name in released)
        if row.released:
            row.reasons = list(released_because)
        elif not spec.shareable:
            row.reasons = ["never_shared"]
        elif not reachable:
            row.reasons = ["not_requested"]
        elif facts["app_status"] != "active":
            row.reasons = ["app_suspended"]
        else:
            row.reasons = why_not(name, reachable)
        out.append(row)
    return out


def explain_grant(store: Store, catalog: Catalog, client_id: str, uid: str) -> list[FieldExplanation]:
    """Every catalog field, released to the app about this person or not, with the reasons."""
    facts = _run(store, catalog, client_id, keys.grant(client_id, uid), "grant")
    refusal = org_policy.refusal_for_member(store, uid, client_id)
    granted = set(facts["owner_scopes"].split())
    ticked = set(facts["ticked"].split())

    def why_not(name: str, reachable: set[str]) -> list[str]:
        if not facts["owner"]:
            return ["org_policy"] if refusal is not None else ["no_grant"]
        if not reachable & granted:
            separate = all(catalog.scopes[s].separate_consent for s in reachable)
            return ["separate_consent_not_given"] if separate else ["scope_not_granted"]
        return ["unticked"] if name not in ticked else []

    return _explain(catalog, facts, "individual", ["requested", "granted"], why_not)


def explain_installation(
    store: Store, catalog: Catalog, client_id: str, org_id: str
) -> list[FieldExplanation]:
    """Every catalog field, released to the app about the organization's members or not, and why."""
    facts = _run(store, catalog, client_id, keys.installation(client_id, org_id), "installation")
    chosen = set(facts["owner_scopes"].split())
    # the member fields the admin chose (issue 13, item 2); none stored: every field of the scopes
    picked = set(facts["ticked"].split()) if facts["ticked"] else None

    def why_not(name: str, reachable: set[str]) -> list[str]:
        if not facts["owner"]:
            return ["not_installed"]
        if not facts["enabled"]:
            return ["switched_off"]
        if not reachable & chosen or (picked is not None and name not in picked):
            return ["not_in_installation"]
        return []

    return _explain(catalog, facts, "organization", ["requested", "installed"], why_not)
