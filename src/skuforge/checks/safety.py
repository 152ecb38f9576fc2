"""The `safety` and `moderation` checks: the compliance gate over every string a model wrote.

    - {check: safety, packs: [zh, en, pii], on_fail: flag}
    - {check: safety, packs: [en], extra_packs: [policies/], competitors: brands.txt}
    - {check: moderation, model: "openai:gpt-4o-mini", threshold: 0.5}      # guard prompt on a chat model
    - {check: moderation, endpoint: "https://api.openai.com/v1", threshold: 0.5}   # /v1/moderations

`safety` returns one finding per violation; its action comes from the pack term (block -> 'fail',
flag -> 'flag'), so a recipe cannot accidentally publish a blocked term by writing `on_fail: flag`.
`moderation` is off unless declared (it costs a model call per string); a finding uses the recipe's `on_fail`.
"""

from __future__ import annotations

import asyncio
import os
from functools import lru_cache
from typing import Any

from skuforge.checks.base import Action, CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, strings
from skuforge.errors import RecipeError
from skuforge.safety.matcher import Match
from skuforge.safety.packs import DEFAULT_PACKS, PackSet, load_packs


@lru_cache(maxsize=16)
def _cached_packs(names: tuple[str, ...], extra: tuple[str, ...], competitors: str | None) -> PackSet:
    """Pack sets are built once per process per configuration: building reads word lists and automata."""
    return load_packs(names, extra=extra, competitors=competitors)


def _as_list(value: Any, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    if value is None:
        return default
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


def finding_for(match: Match, field: str | None, check: str = "safety") -> Finding:
    """A finding that says what matched, where, and why it is a problem."""
    action: Action = "fail" if match.action == "block" else "flag"
    where = f" in {field}" if field else ""
    reason = (
        f"'{match.text}'{where} (chars {match.start}-{match.end}) matches {match.category} term "
        f"'{match.term}' of pack '{match.pack}'; {match.action} it or rewrite the text."
    )
    return Finding(check=check, ok=False, action=action, reason=reason, field=field, details=match.to_dict())


@register("safety")
class SafetyCheck:
    """Scans every string of the output (or of `fields`) with the pack set; one finding per violation."""

    name = "safety"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.fields = as_fields(params.get("fields", params.get("field")))
        packs = _as_list(params.get("packs"), DEFAULT_PACKS)
        extra = _as_list(params.get("extra_packs"))
        competitors = params.get("competitors")
        self.packs = _cached_packs(packs, extra, str(competitors) if competitors else None)

    def __call__(self, item: CheckItem) -> list[Finding]:
        findings = [
            finding_for(match, path)
            for path, text in strings(item.output, self.fields)
            for match in self.packs.scan(text)
        ]
        return findings or [Finding(check=self.name, ok=True)]


@register("moderation")
class ModerationCheck:
    """Model-based moderation of every string of the output; see skuforge.safety.moderation.

    It is asynchronous: inside a run, its guard-prompt calls go through the run's own wrappers (limits,
    retries, cache, budget) via `item.calls`, and their cost lands on the item; requests in flight keep
    flowing while it waits. The `/moderations` endpoint keeps one session per check, opened on first use."""

    name = "moderation"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.on_fail = spec.on_fail
        self.fields = as_fields(params.get("fields", params.get("field")))
        self.threshold = float(params.get("threshold", 0.5))
        self.endpoint = params.get("endpoint")
        self.model = params.get("model")
        self.api_key_env = str(params.get("api_key_env", "OPENAI_API_KEY"))
        self.provider = params.get("provider")  # a Provider instance, for embedding and tests
        if not (self.endpoint or self.model or self.provider):
            raise RecipeError(
                "The moderation check needs 'model' (a chat model for the guard prompt) or 'endpoint'.",
                "Write e.g. '- {check: moderation, model: \"openai:gpt-4o-mini\", threshold: 0.5}'.",
            )
        self._client: Any = None
        self._client_loop: Any = None

    async def __call__(self, item: CheckItem) -> list[Finding]:
        texts = [(p, t) for p, t in strings(item.output, self.fields) if t.strip()]
        if not texts:
            return [Finding(check=self.name, ok=True)]
        verdicts = await self._moderate([t for _, t in texts], item.calls)
        findings = []
        for (path, _), verdict in zip(texts, verdicts, strict=True):
            if verdict.safe:
                continue
            cats = ", ".join(verdict.categories) or "unsafe"
            why = f": {verdict.reason}" if verdict.reason else ""
            reason = f"{path} judged unsafe by {verdict.source} ({cats}){why}."
            findings.append(
                Finding(
                    check=self.name,
                    ok=False,
                    action=self.on_fail,
                    reason=reason,
                    field=path,
                    details=verdict.model_dump(),
                )
            )
        return findings or [Finding(check=self.name, ok=True)]

    async def _moderate(self, texts: list[str], calls: Any) -> list[Any]:
        from skuforge.safety import moderation

        if self.endpoint:
            loop = asyncio.get_running_loop()
            if self._client is None or self._client_loop is not loop:  # a session serves one loop
                self._client_loop = loop
                self._client = moderation.ModerationEndpoint(
                    str(self.endpoint),
                    api_key=os.environ.get(self.api_key_env),
                    threshold=self.threshold,
                    model=str(self.model or "omni-moderation-latest"),
                )
            return list(await self._client.moderate(texts))
        if self.provider is None and calls is not None:
            return [await _guard(t, calls, str(self.model)) for t in texts]
        if self.provider is None:
            from skuforge.providers.registry import get_provider

            self.provider = get_provider(str(self.model))
        return [await moderation.guard_verdict(t, self.provider) for t in texts]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _guard(text: str, calls: Any, model: str) -> Any:
    """The guard prompt through the run's wrappers (`item.calls`), so it is limited, cached and paid for."""
    from skuforge.safety import moderation

    result = await calls.generate(model, moderation.guard_request(text))
    return moderation.parse_guard(result.text, model)
