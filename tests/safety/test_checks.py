"""The `safety` and `moderation` checks as recipes declare them."""

from __future__ import annotations

import pytest

from skuforge.checks.base import CheckItem, CheckSpec, build, findings_now, verdict
from skuforge.errors import OutputError, RecipeError
from skuforge.providers.fake import FakeProvider
from skuforge.testing.mock_openai import MockConfig, MockServer


def _item(output: object) -> CheckItem:
    return CheckItem(row={"id": "1"}, output=output, recipe="selling_points")


def test_safety_check_reports_one_finding_per_violation_with_the_pack_action() -> None:
    check = build(CheckSpec(check="safety", packs=["zh", "en", "pii"], on_fail="flag"))
    findings = check(_item({"title": "極品 tea", "points": ["FREE SHIPPING", "call 138 1234 5678"]}))
    by_field = {f.field: f for f in findings}
    assert set(by_field) == {"title", "points[0]", "points[1]"}
    assert by_field["title"].action == "fail" and by_field["title"].details["term"] == "极品"
    assert by_field["points[0]"].action == "flag" and by_field["points[0]"].details["category"] == "claim"
    assert by_field["points[1]"].details["category"] == "pii"
    assert verdict(findings) == "failed"
    assert "極品" in by_field["title"].reason and "title" in by_field["title"].reason


def test_safety_check_passes_clean_output_and_respects_fields() -> None:
    check = build(CheckSpec(check="safety", packs="en", fields=["title"]))
    findings = check(_item({"title": "Ceramic mug, 350 ml", "notes": "best seller"}))
    assert [f.ok for f in findings] == [True]


def test_moderation_check_needs_a_model_or_endpoint() -> None:
    with pytest.raises(RecipeError):
        build(CheckSpec(check="moderation"))


def test_moderation_check_calls_an_openai_compatible_moderations_endpoint() -> None:
    config = MockConfig(flagged_words={"kill": "violence"}, api_key="sk-test")
    with MockServer(config) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test")
        check = build(CheckSpec(check="moderation", endpoint=server.url, threshold=0.5, on_fail="fail"))
        findings = findings_now(check, _item({"title": "Garden hose", "story": "this hose will kill you"}))
    [bad] = findings
    assert (bad.ok, bad.field, bad.action) == (False, "story", "fail")
    assert bad.details["categories"] == ["violence"]


def test_moderation_check_uses_a_guard_prompt_on_any_provider() -> None:
    provider = FakeProvider(
        script=[
            '{"safe": true, "categories": [], "reason": "fine"}',
            '{"safe": false, "categories": ["sexual"], "reason": "explicit"}',
        ]
    )
    check = build(CheckSpec(check="moderation", provider=provider, on_fail="flag"))
    findings = findings_now(check, _item({"a": "Ceramic mug", "b": "something explicit"}))
    assert [(f.field, f.details["categories"]) for f in findings] == [("b", ["sexual"])]
    assert provider.requests[0].json_mode and "Ceramic mug" in provider.requests[0].messages[-1].content


def test_guard_answer_that_is_not_the_json_shape_is_an_output_error() -> None:
    check = build(CheckSpec(check="moderation", provider=FakeProvider(script=["I think it is fine."])))
    with pytest.raises(OutputError) as exc:
        findings_now(check, _item("Ceramic mug"))
    assert exc.value.raw == "I think it is fine."
