"""Placeholder; being written."""

from aiohttp import web


def routes() -> list[web.RouteDef]:
    return []
