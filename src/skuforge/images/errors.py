"""Errors of the image engine, all `UserError`s: each names the image or op that failed and what to do next.

UserError (skuforge.errors)
└── ImageError            an image could not be read, fetched or processed (recorded per row)
    ├── FetchRefused      a URL that the fetch policy refuses: scheme, private address, size, type
    └── OpSpecError       a bad op spec on the command line or in a recipe: unknown op or parameter
"""

from __future__ import annotations

from skuforge.errors import UserError


class ImageError(UserError):
    """An image could not be read, fetched or processed. In a batch it fails that row only."""


class FetchRefused(ImageError):
    """A URL refused by the fetch policy (never connected to, or cut off while streaming)."""


class OpSpecError(ImageError):
    """An op spec names an unknown op or parameter, or a value out of range."""
