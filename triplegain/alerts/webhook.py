"""A webhook's URL kept secret: only its scheme and host (``shown``) are logged, stored and printed.

A Telegram bot's token is in the path of its URL (``https://api.telegram.org/bot<token>/sendMessage``), a chat's
webhook key often in the query: so everything after the host is withheld, and ``mask`` takes the URL, its path
and its query out of any text before that text is logged or stored (an HTTP library's error may quote them).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

MASK = "…"


def redacted(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no user, password, path, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


class Webhook:
    """One URL alerts are POSTed to; its repr and ``shown`` are the redacted form."""

    __slots__ = ("_secrets", "query_fields", "shown", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = redacted(url)
        parts = urlsplit(url)
        # The URL's query parameters, which each POST's body repeats (Telegram's chat_id).
        self.query_fields = dict(parse_qsl(parts.query))
        # Longest first, so the URL is masked whole before its pieces are.
        pieces = {url, parts.netloc, f"{parts.path}?{parts.query}", parts.path, parts.query, parts.fragment}
        self._secrets = sorted((piece for piece in pieces if len(piece) > 1 and piece not in self.shown), key=len)[::-1]
        if parts.username or parts.password:
            self._secrets.extend(piece for piece in (parts.username, parts.password) if piece)

    def mask(self, text: str) -> str:
        """``text`` with every secret part of the URL replaced by ``…`` (the whole URL by its shown form)."""
        text = text.replace(self.url, f"{self.shown}{MASK}")
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"Webhook({self.shown})"
