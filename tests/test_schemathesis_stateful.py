"""Schemathesis' stateful run along the OpenAPI links of /openapi.json.

The operations that create something (a user, an organization, an app, an installation, a
developer's app) link to the operations on what they created (``@documented(links=...)``), so
schemathesis chains them: create, then read, change, suspend, rotate or delete what came back, in
random order. Every answer of every step must conform (no 5xx, a documented status, content type
and body). The run covers the platform API (operator key) and the developer console's API (a
developer's session cookie and CSRF token); derandomized and bounded for CI.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.config import SchemathesisConfig

from broker.directory import service as directory
from tests.support.schemathesis_world import make_world
from tests.test_schemathesis_apis import CHECKS

LINKED = r"^/internal/v1/(users|orgs|apps)|^/developer/v1/apps"


def test_links_chain_creations_to_what_they_created(app: Any, store: Any, settings: Any) -> None:
    world = make_world(app, store, settings)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=SchemathesisConfig())
    links = [
        link
        for ops in schema.raw_schema["paths"].values()
        for op in ops.values()
        for answer in op["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    assert len(links) >= 20, links
    platform = {"Authorization": f"Bearer {settings.platform_api_key}"}
    console = {"X-CSRFToken": world.csrf}
    reached: dict[str, set[int]] = {}

    class Linked(schema.include(path_regex=LINKED).as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # every scenario starts from the same server state (an empty directory but for the
            # signed-in developer), so the same choices meet the same answers
            store.redis.flushdb()
            directory.create_user(store, {"id": world.owner_id, "username": "olive"})

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            if case.path.startswith("/internal/"):
                return {"headers": platform}
            return {"headers": console, "cookies": world.cookies}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            reached.setdefault(f"{case.method.upper()} {case.path}", set()).add(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=self.get_call_kwargs(case)["headers"])

    Linked.run(
        settings=hypothesis_settings(
            max_examples=40,
            stateful_step_count=8,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            # a replay would meet a server whose records the first run changed: report, do not shrink
            phases=[Phase.explicit, Phase.generate],
        )
    )
    # links were followed: operations on records whose ids only a creation's answer held succeeded
    followed = {
        name
        for name, codes in reached.items()
        if name.split()[1].startswith("/internal/v1/")
        and "{" in name
        and any(200 <= code < 300 for code in codes)
        and not name.endswith(("/secret", "/webhook-secret"))  # random ids of apps that exist nowhere
    }
    assert len(followed) >= 3, reached


def test_a_link_to_no_operation_is_refused_when_the_document_is_built(app: Any) -> None:
    from broker.web.shared.openapi import build_spec, documented, links_to

    @documented(
        status=204, links=links_to("/internal/v1/nowhere/{id}", {"id": "$response.body#/id"}, Lost="get")
    )
    def dangling() -> Any:
        return None

    app.add_url_rule("/internal/v1/dangling", "dangling", dangling, methods=["POST"])
    with app.app_context(), pytest.raises(ValueError, match="link Lost names no operation"):
        build_spec(app)
