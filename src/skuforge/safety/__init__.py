"""The safety and compliance gate: policy packs, an evasion-resistant matcher, PII, image and model checks.

    from skuforge.safety import load_packs
    packs = load_packs(["zh", "en", "pii"], competitors="brands.txt")
    for m in packs.scan("ＦＲＥＥ ＳＨＩＰＰＩＮＧ, call 138 1234 5678"):
        print(m.start, m.end, m.text, m.category, m.action)

Image scores live in `skuforge.safety.nsfw` and model moderation in `skuforge.safety.moderation`; both pull in
optional extras, so they are not imported here.
"""

from skuforge.safety.matcher import Match, Matcher, Term
from skuforge.safety.normalize import Normalized, normalize
from skuforge.safety.packs import DEFAULT_PACKS, Pack, PackSet, builtin_packs, competitor_pack, load_packs
from skuforge.safety.pii import find_pii

__all__ = [
    "DEFAULT_PACKS",
    "Match",
    "Matcher",
    "Normalized",
    "Pack",
    "PackSet",
    "Term",
    "builtin_packs",
    "competitor_pack",
    "find_pii",
    "load_packs",
    "normalize",
]
