"""What each vendor's API accepts, as the mock server checks it: request bodies it would refuse get a 400.

The rules follow the vendors' documentation of their request formats (no live calls are made):

- every chat server: `model`, a non-empty `messages` list with known roles, `temperature` in [0, 2];
  `response_format: json_object` needs the word "json" somewhere in the messages;
- `openai`: no parameter it does not know; `response_format: json_schema` needs a `name` ([a-zA-Z0-9_-],
  at most 64) and a `schema`; with `strict: true` the schema must be in the strict subset
  (`skuforge.providers.schemas`); reasoning models (GPT-5, o-series) refuse `max_tokens` (they take
  `max_completion_tokens`) and any temperature but the default 1;
- `deepseek`: JSON Output only (`json_object`); `json_schema` is refused; `thinking` is enabled/disabled;
- `qwen` (DashScope compatible mode): `json_object`; `json_schema` is taken as a hint;
- `gemini` (the OpenAI-compatible endpoint): `json_schema` in Gemini's subset;
- `anthropic` (`/v1/messages`): `model`, `max_tokens`, messages alternating from a user turn and ending
  with one (no assistant prefill, unless the mock is told the model still takes it), `temperature` in
  [0, 1], `system` as a string or text blocks, at most 4 `cache_control` breakpoints of type `ephemeral`,
  and `output_config.format` with a `json_schema` in Claude's subset.

Each check returns the error message the server would send, or None.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from skuforge.providers import schemas

FLAVORS = ("openai", "deepseek", "qwen", "gemini")
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REASONING_MODELS = ("gpt-5*", "o[0-9]*")
_OPENAI_PARAMS = frozenset(
    """model messages temperature top_p n stream stream_options stop max_tokens max_completion_tokens
    presence_penalty frequency_penalty logit_bias logprobs top_logprobs user response_format seed tools
    tool_choice parallel_tool_calls reasoning_effort service_tier store metadata modalities audio
    prediction verbosity prompt_cache_key safety_identifier web_search_options""".split()  # noqa: SIM905
)
_DEEPSEEK_PARAMS = _OPENAI_PARAMS | {"thinking"}


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def chat_error(body: dict[str, Any], flavor: str) -> str | None:
    """Why a chat/completions server of `flavor` would refuse `body` (None when it accepts it)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list."
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            return f"Invalid value for 'messages[{i}].role'."
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        return "'temperature' must be a number between 0 and 2."
    for field in ("max_tokens", "max_completion_tokens"):
        if field in body and (not isinstance(body[field], int) or body[field] < 1):
            return f"'{field}' must be a positive integer."
    problem = _vendor_params(body, flavor)
    if problem is not None:
        return problem
    fmt = body.get("response_format")
    return _format_error(fmt, messages, flavor) if fmt is not None else None


def _vendor_params(body: dict[str, Any], flavor: str) -> str | None:
    known = {"openai": _OPENAI_PARAMS, "deepseek": _DEEPSEEK_PARAMS}.get(flavor)
    unknown = sorted(set(body) - known) if known is not None else []
    if unknown:
        return f"Unrecognized request argument supplied: {unknown[0]}"
    if flavor == "openai" and any(fnmatch.fnmatchcase(str(body["model"]), p) for p in REASONING_MODELS):
        if "max_tokens" in body:
            return (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead."
            )
        if body.get("temperature", 1) != 1:
            return (
                f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                "Only the default (1) value is supported."
            )
    thinking = body.get("thinking")
    if flavor == "deepseek" and thinking not in (None, {"type": "enabled"}, {"type": "disabled"}):
        return "thinking: type must be 'enabled' or 'disabled'"
    return None


def _format_error(fmt: Any, messages: list[Any], flavor: str) -> str | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        return "Invalid value for 'response_format.type'."
    if kind == "json_object":
        words = " ".join(text_of(m.get("content")) for m in messages).lower()
        if "json" not in words:
            return (
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                "'json_object'."
            )
        return None
    if kind != "json_schema":
        return None
    if flavor == "deepseek":
        return "This response_format type is unavailable now"
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        return "Missing required parameter: 'response_format.json_schema.schema'."
    if flavor == "openai" and not _NAME.match(str(spec.get("name") or "")):
        return "Invalid 'response_format.json_schema.name': use a-z, A-Z, 0-9, '_' or '-', at most 64."
    dialect = {"openai": "openai-strict" if spec.get("strict") else "json-schema", "gemini": "gemini"}
    problems = schemas.check(spec["schema"], dialect.get(flavor, "json-schema"))  # type: ignore[arg-type]
    if problems:
        return f"Invalid schema for response_format '{spec.get('name')}': {'; '.join(problems[:3])}."
    return None


def anthropic_error(body: dict[str, Any], *, prefill: bool = False) -> str | None:
    """Why Anthropic's Messages API would refuse `body` (None when it accepts it)."""
    turns = body.get("messages")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required (a positive integer)"
    if not isinstance(turns, list) or not turns:
        return "messages: at least one message is required"
    roles = [t.get("role") if isinstance(t, dict) else None for t in turns]
    if any(r not in ("user", "assistant") for r in roles):
        return "messages: roles must be 'user' or 'assistant' (the system prompt goes in 'system')"
    if roles[0] != "user" or any(a == b for a, b in zip(roles, roles[1:], strict=False)):
        return "messages: roles must alternate between 'user' and 'assistant', starting with 'user'"
    if roles[-1] == "assistant" and not prefill:
        return (
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message."
        )
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1:
        return "temperature: must be between 0 and 1"
    return _system_error(body) or _cache_error(body) or _output_error(body)


def _system_error(body: dict[str, Any]) -> str | None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list) or not all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system
    ):
        return "system: must be a string or a list of text blocks"
    return None


def cache_breakpoints(body: dict[str, Any]) -> list[Any]:
    """Every `cache_control` in the body: top level, system blocks and message content blocks."""
    found = [body["cache_control"]] if "cache_control" in body else []
    blocks = list(body["system"]) if isinstance(body.get("system"), list) else []
    for turn in body.get("messages") or []:
        content = turn.get("content") if isinstance(turn, dict) else None
        blocks += content if isinstance(content, list) else []
    return found + [b["cache_control"] for b in blocks if isinstance(b, dict) and "cache_control" in b]


def _cache_error(body: dict[str, Any]) -> str | None:
    marks = cache_breakpoints(body)
    if len(marks) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(marks)}."
    for mark in marks:
        kind_ok = isinstance(mark, dict) and mark.get("type") == "ephemeral"
        if not kind_ok or mark.get("ttl", "5m") not in ("5m", "1h"):
            return "cache_control: type must be 'ephemeral' (ttl '5m' or '1h')"
    return None


def _output_error(body: dict[str, Any]) -> str | None:
    if "output_config" not in body:
        return None
    fmt = (body["output_config"] or {}).get("format") if isinstance(body["output_config"], dict) else None
    if fmt is None:
        return None
    shaped = isinstance(fmt, dict) and fmt.get("type") == "json_schema"
    if not shaped or not isinstance(fmt.get("schema"), dict):
        return "output_config.format: must be {type: 'json_schema', schema: {...}}"
    problems = schemas.check(fmt["schema"], "anthropic")
    return f"output_config.format.schema: {'; '.join(problems[:3])}" if problems else None


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of an Anthropic body's `output_config.format`, if it asks for one."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    return schema if isinstance(schema, dict) else None
