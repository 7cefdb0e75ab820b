"""The address a request came from, for the sign-in throttle (django-axes).

Behind a proxy, `REMOTE_ADDR` is the proxy's and `X-Forwarded-For` is a list that the client
starts and each proxy extends on the right. Only the entries added by proxies this server trusts
can be believed, so the client's address is the one `TRUSTED_PROXY_HOPS` places from the right:
with one proxy, the right-most entry. This holds for a proxy that appends
(`proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`, where a client's forged
entries stay on the left) and for one that replaces the header (`... $remote_addr;`, one entry).
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def _address(text: str) -> str | None:
    """A bare IP address from an X-Forwarded-For entry (ports and brackets removed)."""
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4:port
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: `REMOTE_ADDR` without trusted proxies, else the entry of
    X-Forwarded-For that the outermost trusted proxy added."""
    remote = request.META.get("REMOTE_ADDR")
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return remote
    entries = [e for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
    if len(entries) < hops:
        # The proxy did not add its entry: a misconfiguration, not something a client can do.
        logger.warning(
            "X-Forwarded-For has %d entries behind %d trusted proxies; using REMOTE_ADDR",
            len(entries),
            hops,
        )
        return remote
    return _address(entries[-hops]) or remote
