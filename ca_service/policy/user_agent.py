"""The device MAC named in a Gigaset User-Agent (see shared/domain.md, "Devices").

Seen forms: ``Gigaset N870 IP PRO/83.V2.65.0+build.8504c90;7C2F80E0D605``, the same wrapped in
double quotes (older firmware), and either with ``;Handset=<n>`` appended.
"""

from __future__ import annotations

from ca_service.domain import MacAddress
from ca_service.errors import CAError


def mac_in_user_agent(user_agent: str | None) -> MacAddress | None:
    """The MAC in the ``;``-separated fields after the product token, or None when there is none.
    Never raises on junk."""
    if not user_agent or len(user_agent) > 512:
        return None
    fields = user_agent.strip().strip('"').split(";")[1:]
    for field in fields:
        candidate = field.strip().strip('"').strip()
        if "=" in candidate or len(candidate) > 17:
            continue
        try:
            return MacAddress.parse(candidate)
        except CAError:
            continue
    return None
