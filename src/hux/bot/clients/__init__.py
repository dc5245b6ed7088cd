"""Clients for the external APIs: one resilient HTTP core (``http``) and one module per API."""

from hux.bot.clients.dexscreener import DexScreenerClient, PairInfo
from hux.bot.clients.http import ApiClient, ApiError, CircuitBreaker, RateLimiter, RequestContext, redact
from hux.bot.clients.rugcheck import RiskReport, RugCheckClient
from hux.bot.clients.telegram import TelegramBotApi

__all__ = [
    "ApiClient",
    "ApiError",
    "CircuitBreaker",
    "DexScreenerClient",
    "PairInfo",
    "RateLimiter",
    "RequestContext",
    "RiskReport",
    "RugCheckClient",
    "TelegramBotApi",
    "redact",
]
