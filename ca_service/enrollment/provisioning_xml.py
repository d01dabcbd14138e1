"""The Gigaset auto-provisioning document and its ``certificate`` step (shared/domain.md).

Built with ElementTree, so URLs are attribute-escaped (``&`` becomes ``&amp;``). The meaning of
``flags`` values other than ``CLIENT_CERT`` is not public.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ca_service.enrollment.credentials import Delivery

FLAGS = "CLIENT_CERT"


def step(delivery: Delivery) -> ET.Element:
    return ET.Element(
        "step",
        {"type": "certificate", "url": delivery.certificate_url, "key": delivery.key_url, "flags": FLAGS},
    )


def step_xml(delivery: Delivery) -> bytes:
    """Only the ``<step .../>`` element, for platforms that assemble their own file."""
    return ET.tostring(step(delivery), encoding="unicode").encode()


def document(delivery: Delivery | None) -> bytes:
    """A complete ``<provisioning version="1.1" productID="e2">`` document; its ``custom``
    section holds the certificate step when one is due, and is empty otherwise."""
    root = ET.Element("provisioning", {"version": "1.1", "productID": "e2"})
    ET.SubElement(root, "firmware").text = ""
    ET.SubElement(root, "nvm").text = ""
    custom = ET.SubElement(root, "custom")
    custom.text = ""
    if delivery is not None:
        custom.append(step(delivery))
    ET.indent(root)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode() + b"\n"
    )
