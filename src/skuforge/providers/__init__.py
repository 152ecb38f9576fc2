"""Providers: one async method, `generate(request) -> result`; names resolve as `provider:model`."""

from skuforge.providers.base import Capabilities, Message, Provider, Request, Result, Usage, Wrapper
from skuforge.providers.registry import get_provider

__all__ = ["Capabilities", "Message", "Provider", "Request", "Result", "Usage", "Wrapper", "get_provider"]
