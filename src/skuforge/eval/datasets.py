"""Where benchmarks and evaluations find third-party data: not in the repository (each dataset has its own
licence), but in a folder you point `SKUFORGE_DATA` at, one sub-folder per dataset
(`amazon-catalog-2020/`, `shopee-title-translation/`, `amazon-product-qa/`, `ccp-clothing-parsing/`, ...)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir(*parts: str) -> Path:
    """`SKUFORGE_DATA`/parts, or exit with what to set when it is not there."""
    root = os.environ.get("SKUFORGE_DATA", "").strip()
    if not root:
        sys.exit(
            "This benchmark needs evaluation data that is not part of the repository. Set SKUFORGE_DATA to "
            "the folder that holds the datasets (one sub-folder each, e.g. amazon-catalog-2020/), then run "
            "it again."
        )
    path = Path(root, *parts)
    if not path.exists():
        sys.exit(f"{path} does not exist: check SKUFORGE_DATA={root} and that it holds {'/'.join(parts)}.")
    return path
