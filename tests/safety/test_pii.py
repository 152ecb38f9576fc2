"""PII detectors find contact details and IDs, validate them, and leave product numbers alone."""

from __future__ import annotations

import pytest

from skuforge.safety import find_pii
from skuforge.safety.pii import card_valid, cn_id_valid, luhn_valid


@pytest.mark.parametrize(
    ("text", "kind", "span"),
    [
        ("call 138 1234 5678 now", "phone", "138 1234 5678"),
        ("电话13812345678", "phone", "13812345678"),
        ("联系１３８１２３４５６７８", "phone", "１３８１２３４５６７８"),
        ("tel +86 139-8765-4321", "phone", "+86 139-8765-4321"),
        ("ring (555) 123-4567", "phone", "(555) 123-4567"),
        ("ring 555.123.4567", "phone", "555.123.4567"),
        ("London +44 20 7946 0958", "phone", "+44 20 7946 0958"),
        ("mail me: jo.doe@example.com", "email", "jo.doe@example.com"),
        ("jo at example dot com", "email", "jo at example dot com"),
        ("jo(at)example(dot)cn", "email", "jo(at)example(dot)cn"),
        ("see https://shop.example.com/x?y=1", "url", "https://shop.example.com/x?y=1"),
        ("see cheap-deals.shop", "url", "cheap-deals.shop"),
        ("id 11010519491231002X", "national_id", "11010519491231002X"),
        ("ssn 123-45-6789", "national_id", "123-45-6789"),
        ("card 4111 1111 1111 1111", "credit_card", "4111 1111 1111 1111"),
        ("amex 378282246310005", "credit_card", "378282246310005"),
    ],
)
def test_pii_is_found_with_its_original_span(text: str, kind: str, span: str) -> None:
    [match] = find_pii(text)
    assert (match.term, match.text) == (kind, span)
    assert text[match.start : match.end] == span


@pytest.mark.parametrize(
    "text",
    [
        "Product Dimensions: 14.7 x 11.1 x 10.2 inches ; 4.06 pounds",
        "EAN 4006381333931 UPC 036000291452 ISBN 9780306406157",
        "Price $99.95 (was $129.00), 2-pack",
        "Model SC-MK-010, item 55324, SKU 352634-03 352634-05",
        "Node.js starter kit, 3.5mm jack, image.jpg",
        "Sizes 13 15 17 19 21 23 25",
        "Serial 12345678901234567",  # 17 digits: fails Luhn or issuer
        "id 110105194912310021",  # wrong check character
        "ssn 000-12-3456 and 666-12-3456",
    ],
)
def test_product_numbers_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_validators_follow_their_standards() -> None:
    assert cn_id_valid("11010519491231002X") and not cn_id_valid("110105194912310021")
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert card_valid("5555 5555 5555 4444") and not card_valid("4006381333931")  # an EAN-13 is not a card


def test_only_requested_kinds_run_with_their_actions() -> None:
    [match] = find_pii("mail jo@example.com or call 138 1234 5678", {"email": "flag"})
    assert (match.term, match.action) == ("email", "flag")
