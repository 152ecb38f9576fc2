"""The mock refuses, with the vendor's 400, the request bodies each vendor documents as invalid."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest

from skuforge.testing.mock_openai import MockConfig, MockServer

OBJ = {
    "type": "object",
    "properties": {"t": {"type": "string"}},
    "required": ["t"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "Answer in JSON: a title for a kettle"}]


def post(server: MockServer, path: str, body: dict[str, Any], **headers: str) -> tuple[int, str]:
    """(status, the error message of a 4xx) of one POST."""
    sent = {"Content-Type": "application/json", **headers}
    req = urllib.request.Request(f"{server.base}{path}", data=orjson.dumps(body), headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, str(orjson.loads(exc.read())["error"]["message"])


def chat(server: MockServer, **body: Any) -> tuple[int, str]:
    return post(server, "/v1/chat/completions", {"model": "gpt-5-mini", "messages": USER, **body})


def messages(server: MockServer, **body: Any) -> tuple[int, str]:
    full = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": USER, **body}
    return post(server, "/v1/messages", full, **{"anthropic-version": "2023-06-01"})


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "output", "strict": True, "schema": schema}}


@pytest.fixture
def server() -> MockServer:  # type: ignore[misc]
    with MockServer(MockConfig()) as mock:
        yield mock


def test_a_valid_strict_schema_is_answered(server: MockServer) -> None:
    assert chat(server, response_format=strict(OBJ)) == (200, "")


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({**OBJ, "additionalProperties": True}, "'additionalProperties' must be false"),
        ({**OBJ, "required": []}, "'required' must list every property"),
        ({**OBJ, "properties": {"t": {"type": "string", "maxLength": 60}}}, "'maxLength' is not supported"),
    ],
)
def test_openai_strict_mode_refuses_what_is_outside_its_subset(
    server: MockServer, schema: dict, says: str
) -> None:
    status, message = chat(server, response_format=strict(schema))
    assert status == 400 and says in message


def test_json_mode_needs_the_word_json_in_the_messages(server: MockServer) -> None:
    status, message = chat(
        server, messages=[{"role": "user", "content": "a title"}], response_format={"type": "json_object"}
    )
    assert status == 400 and "must contain the word 'json'" in message


def test_deepseek_has_json_mode_but_refuses_json_schema(server: MockServer) -> None:
    server.configure(flavor="deepseek")
    assert chat(server, response_format={"type": "json_object"}) == (200, "")
    status, message = chat(server, response_format=strict(OBJ))
    assert status == 400 and "unavailable" in message


def test_gemini_refuses_additional_properties_in_its_schema(server: MockServer) -> None:
    server.configure(flavor="gemini")
    status, message = chat(server, response_format=strict(OBJ))
    assert status == 400 and "'additionalProperties' is not supported" in message


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"messages": [*USER, {"role": "assistant", "content": "{"}]},
            "does not support assistant message prefill",
        ),
        ({"messages": [{"role": "system", "content": "x"}, *USER]}, "roles must be 'user' or 'assistant'"),
        ({"temperature": 1.5}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"system": [{"type": "text", "text": "x", "cache_control": {"type": "forever"}}]}, "ephemeral"),
        (
            {
                "system": [
                    {"type": "text", "text": str(i), "cache_control": {"type": "ephemeral"}} for i in range(5)
                ]
            },
            "A maximum of 4 blocks with cache_control",
        ),
        (
            {
                "output_config": {
                    "format": {"type": "json_schema", "schema": {**OBJ, "additionalProperties": True}}
                }
            },
            "'additionalProperties' must be false",
        ),
        (
            {
                "output_config": {
                    "format": {"type": "json_schema", "schema": {"type": "number", "minimum": 1}}
                }
            },
            "'minimum' is not supported",
        ),
    ],
)
def test_anthropic_refuses_what_the_messages_api_refuses(server: MockServer, body: dict, says: str) -> None:
    status, message = messages(server, **body)
    assert status == 400 and says in message


def test_anthropic_accepts_structured_outputs_and_a_cached_system_prompt(server: MockServer) -> None:
    system = [{"type": "text", "text": "You write titles.", "cache_control": {"type": "ephemeral"}}]
    output = {"format": {"type": "json_schema", "schema": OBJ}}
    assert messages(server, system=system, output_config=output) == (200, "")


def test_an_old_claude_that_takes_a_prefill_can_be_played(server: MockServer) -> None:
    server.configure(anthropic_prefill=True)
    assert messages(server, messages=[*USER, {"role": "assistant", "content": "{"}])[0] == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"max_tokens": 100}, "Use 'max_completion_tokens' instead"),
        ({"temperature": 0}, "Only the default (1) value is supported"),
        ({"thinking": {"type": "disabled"}}, "Unrecognized request argument supplied: thinking"),
    ],
)
def test_openai_reasoning_models_refuse_what_gpt5_refuses(server: MockServer, body: dict, says: str) -> None:
    status, message = chat(server, **body)
    assert status == 400 and says in message
    assert chat(server, max_completion_tokens=100) == (200, "")


def test_older_openai_models_take_a_temperature_and_max_tokens(server: MockServer) -> None:
    assert chat(server, model="gpt-4o-mini", temperature=0, max_tokens=50) == (200, "")


def test_deepseek_takes_its_thinking_switch(server: MockServer) -> None:
    server.configure(flavor="deepseek")
    assert chat(server, thinking={"type": "disabled"}, temperature=0) == (200, "")
    assert chat(server, thinking={"type": "sometimes"})[0] == 400
