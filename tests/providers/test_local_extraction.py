"""The extraction answer shape: a decoder can only write null, offered values or spans of the text."""

from __future__ import annotations

import json

from skuforge.providers.extraction import AnswerShape, Cursor, Source

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
    offered = {"anyOf": [{"enum": ["Men", "Women"]}, NULLABLE]}
    assert finished(Cursor(shape(Gender=closed)), '{"Gender": "Men"}')
    assert not writes(Cursor(shape(Gender=closed)), '{"Gender": "Mens"')  # a span, but the enum is closed
    assert finished(Cursor(shape(Gender=offered)), '{"Gender": "Women"}')  # not written in the text
    assert finished(Cursor(shape(Gender=offered)), '{"Gender": "Mens"}')  # written in the text


def test_schemas_that_are_not_flat_strings_are_left_to_the_grammar() -> None:
    lists = {"type": "object", "properties": {"points": {"type": "array", "items": {"type": "string"}}}}
    assert AnswerShape.build(lists, [TITLE]) is None
    assert AnswerShape.build({"type": "object"}, [TITLE]) is None
    assert AnswerShape.build(None, [TITLE]) is None


def test_word_boundaries_split_letters_digits_and_chinese_characters() -> None:
    source = Source.of(["12CM 16.5G 纯棉"])
    starts = [source.data[i:].decode() for i in source.starts]
    ends = sorted(source.data[:i].decode() for i in source.ends)
    assert starts == ["12CM 16.5G 纯棉", "CM 16.5G 纯棉", "16.5G 纯棉", "5G 纯棉", "G 纯棉", "纯棉", "棉"]
    assert ends == ["12", "12CM", "12CM 16", "12CM 16.5", "12CM 16.5G", "12CM 16.5G 纯", "12CM 16.5G 纯棉"]
