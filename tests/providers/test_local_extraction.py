"""The extraction answer shape: a decoder can only write null, offered values or spans of the text."""

from __future__ import annotations

import ctypes
import json
from types import SimpleNamespace
from typing import Any

from skuforge.providers.extraction import AnswerShape, Cursor, Source
from skuforge.providers.local_runtime import END_BIAS, LoadedModel

TITLE = 'Folgers Special Roast Medium Roast Ground Coffee, 24.2 Ounces, 9/16" Mens'
NULLABLE = {"type": ["string", "null"]}


def shape(required: list[str] | None = None, **props: dict) -> AnswerShape:
    schema = {"type": "object", "properties": props, "required": required or []}
    built = AnswerShape.build(schema, [TITLE, "韩版撞色条纹短袖T恤 纯棉 白色"])
    assert built is not None
    return built


def writes(cursor: Cursor, text: str) -> bool:
    return cursor.clone().feed(text.encode("utf-8"))


def finished(cursor: Cursor, text: str) -> bool:
    probe = cursor.clone()
    return probe.feed(text.encode("utf-8")) and probe.done


def test_a_value_is_a_run_of_whole_words_of_the_product_text() -> None:
    cursor = Cursor(shape(Brand=NULLABLE, Roast=NULLABLE))
    assert finished(cursor, '{"Brand": "Folgers", "Roast": "Medium Roast"}')
    assert finished(cursor, '{"Brand": "Ground Coffee, 24.2 Ounces"}')
    assert writes(cursor, '{"Brand": "Folg')  # on its way to a word end
    assert not finished(cursor, '{"Brand": "Folg"}')  # but may not stop inside a word
    assert not writes(cursor, '{"Brand": "Nescafe')  # not written in the text
    assert not writes(cursor, '{"Brand": "olgers')  # not from the start of a word


def test_chinese_values_may_start_and_end_at_any_character() -> None:
    cursor = Cursor(shape(material=NULLABLE, color=NULLABLE))
    assert finished(cursor, '{"material": "纯棉", "color": "白色"}')
    assert finished(cursor, '{"material": "撞色"}')


def test_values_never_run_from_one_text_into_the_next() -> None:
    assert not writes(Cursor(shape(Size=NULLABLE)), '{"Size": "Mens 韩')


def test_quotes_in_the_text_are_copied_escaped() -> None:
    cursor = Cursor(shape(Size=NULLABLE))
    assert finished(cursor, json.dumps({"Size": '9/16"'}, ensure_ascii=False))


def test_keys_come_in_schema_order_and_optional_ones_may_be_left_out() -> None:
    cursor = Cursor(shape(Brand=NULLABLE, Flavor=NULLABLE))
    assert finished(cursor, "{}")
    assert finished(cursor, '{"Flavor": null}')
    assert not writes(cursor, '{"Flavor": null, "Brand"')
    assert not writes(cursor, '{"Colour"')


def test_required_keys_are_forced_so_a_decoder_can_evaluate_them_in_one_batch() -> None:
    cursor = Cursor(shape(["Brand", "Flavor"], Brand=NULLABLE, Flavor=NULLABLE))
    assert cursor.forced() == b'{"Brand":'
    cursor.feed(cursor.forced())
    assert cursor.forced() == b""  # the model chooses: null or a value
    assert cursor.feed(b" null")
    assert cursor.forced() == b', "Flavor":'
    assert not finished(Cursor(shape(["Brand"], Brand=NULLABLE)), "{}")


def test_an_enum_is_closed_and_offered_values_are_allowed_besides_spans() -> None:
    closed = {"type": ["string", "null"], "enum": ["Men", "Women", None]}
    offered = {"anyOf": [{"enum": ["Men's", "Women"]}, NULLABLE]}
    assert finished(Cursor(shape(Gender=closed)), '{"Gender": "Men"}')
    assert finished(Cursor(shape(Gender=closed)), '{"Gender": "Women"}')  # closed: written or not
    assert not writes(Cursor(shape(Gender=closed)), '{"Gender": "Mens"')  # a span, but the enum is closed
    assert finished(Cursor(shape(Gender=offered)), '{"Gender": "Men\'s"}')  # the text says "Mens"
    assert finished(Cursor(shape(Gender=offered)), '{"Gender": "Mens"}')  # written in the text


def test_an_offered_value_the_text_does_not_mention_is_not_written() -> None:
    offered = {
        "anyOf": [{"enum": ["Women", "Plastic", "Special Medium", "Roast Medium", "白色", "红色"]}, NULLABLE]
    }
    cursor = Cursor(shape(Gender=offered))
    assert not writes(cursor, '{"Gender": "Women')  # "Mens" is not "Women"
    assert not writes(cursor, '{"Gender": "Plastic')
    assert not writes(cursor, '{"Gender": "Special Medium')  # both words are there, not in a row
    assert finished(cursor, '{"Gender": "Roast Medium"}')
    assert finished(cursor, '{"Gender": "白色"}')
    assert not writes(cursor, '{"Gender": "红色')


def test_schemas_that_are_not_flat_strings_are_left_to_the_grammar() -> None:
    lists = {"type": "object", "properties": {"points": {"type": "array", "items": {"type": "string"}}}}
    assert AnswerShape.build(lists, [TITLE]) is None
    assert AnswerShape.build({"type": "object"}, [TITLE]) is None
    assert AnswerShape.build(None, [TITLE]) is None


def test_letters_and_digits_written_together_are_one_word_and_each_chinese_character_is_one() -> None:
    source = Source.of(["12CM 16.5G 纯棉"])
    starts = [source.data[i:].decode() for i in source.starts]
    ends = sorted(source.data[:i].decode() for i in source.ends)
    assert starts == ["12CM 16.5G 纯棉", "16.5G 纯棉", "5G 纯棉", "纯棉", "棉"]
    assert ends == ["12CM", "12CM 16", "12CM 16.5G", "12CM 16.5G 纯", "12CM 16.5G 纯棉"]


def test_a_number_is_never_cut_from_the_unit_written_onto_it() -> None:
    schema = {"type": "object", "properties": {"Dosage": NULLABLE}}
    built = AnswerShape.build(schema, ["Vitamin C 250mg, 60 Gummies, KF94"])
    assert built is not None
    assert finished(Cursor(built), '{"Dosage": "250mg"}')
    assert not finished(Cursor(built), '{"Dosage": "250"}')
    assert not writes(Cursor(built), '{"Dosage": "mg')
    assert not writes(Cursor(built), '{"Dosage": "94')
    assert finished(Cursor(built), '{"Dosage": "60"}')  # a space after it: a number on its own


class _Logits:
    """Stands in for llama.cpp's context: the logits of the next token, one per vocabulary entry."""

    def __init__(self, scores: dict[bytes, float], vocab: list[bytes]) -> None:
        self.array = (ctypes.c_float * len(vocab))(*[scores.get(data, -20.0) for data in vocab])

    def get_logits(self) -> Any:
        return self.array


def _decoder_choice(written: str, scores: dict[bytes, float], texts: list[str] | None = None) -> bytes:
    """The bytes the local decoder picks after `written`, when the model scores the next token so."""
    vocab = [*scores, *(bytes([i]) for i in range(1, 80))]  # filler tokens the answer never accepts
    model = LoadedModel.__new__(LoadedModel)
    model._vocab, model._bytes = len(vocab), dict(enumerate(vocab))
    model.llama = SimpleNamespace(_ctx=_Logits(scores, vocab))
    schema = {"type": "object", "properties": {"Brand": NULLABLE}}
    built = AnswerShape.build(schema, texts) if texts else shape(Brand=NULLABLE)
    assert built is not None
    cursor = Cursor(built)
    assert cursor.feed(written.encode("utf-8"))
    return model._best(cursor)[1]


def test_the_decoder_ends_a_value_of_two_words_where_ending_is_nearly_as_likely_as_going_on() -> None:
    going_on = b" Roast"
    assert _decoder_choice('{"Brand": "Folgers Special', {going_on: 5.0, b'"}': 4.0}) == b'"}'
    assert (
        _decoder_choice('{"Brand": "Folgers Special', {going_on: 5.0, b'"}': 5.0 - END_BIAS - 0.5})
        == going_on
    )
    assert _decoder_choice('{"Brand": "Folgers', {b" Special": 5.0, b'"}': 4.0}) == b" Special"  # one word
    assert _decoder_choice('{"Brand": "Folgers Spec', {b"ial": 5.0, b'"}': 4.9}) == b"ial"  # not a word end
    assert _decoder_choice('{"Brand": "Ground Coffee', {b",": 5.0, b'"}': 4.9}) == b'"}'  # a separator next
    sunscreen = ["Banana Boat Sport Lotion, SPF 50+, 12 Ounces"]
    assert _decoder_choice('{"Brand": "SPF 50', {b"+": 5.0, b'"}': 4.9}, sunscreen) == b"+"  # same word
