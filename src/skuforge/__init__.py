"""skuforge: enrich e-commerce catalogs with generated content at catalog scale."""

from skuforge.errors import SkuforgeError

__version__ = "0.1.0"
__all__ = ["SkuforgeError", "__version__"]
