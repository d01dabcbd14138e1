"""Prometheus metrics of CRL publication, read from the database at scrape time.

The values come from the shared ``crls`` and ``crl_pending`` rows, not from worker memory, so
every gunicorn worker answers a scrape with the same figures: no multiprocess directory is needed.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ca_service.revocation.service import Revocation


class CrlCollector(Collector):
    def __init__(self, revocation: Revocation) -> None:
        self.revocation = revocation

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.revocation.clock.now()
        families = {
            "number": GaugeMetricFamily(
                "ca_crl_number", "CRL number of the published CRL", labels=["issuer"]
            ),
            "entries": GaugeMetricFamily("ca_crl_entries", "Entries in the published CRL", labels=["issuer"]),
            "next": GaugeMetricFamily(
                "ca_crl_next_update_timestamp_seconds", "nextUpdate of the published CRL", labels=["issuer"]
            ),
            "pending": GaugeMetricFamily(
                "ca_crl_pending_revocations", "Revocations not yet in the published CRL", labels=["issuer"]
            ),
            "stale": GaugeMetricFamily(
                "ca_crl_stale", "1 when the CRL is unpublished or past its nextUpdate", labels=["issuer"]
            ),
            "waiting": GaugeMetricFamily(
                "ca_crl_oldest_pending_revocation_seconds",
                "Age of the oldest revocation not yet in the published CRL (0: none)",
                labels=["issuer"],
            ),
            "import": GaugeMetricFamily(
                "ca_crl_import_due",
                "1 when an external root's CRL is missing or near its nextUpdate (root_crl_warn_days)",
                labels=["issuer"],
            ),
        }
        for h in self.revocation.health():
            families["number"].add_metric([h.issuer], h.number or 0)
            families["entries"].add_metric([h.issuer], h.entries)
            families["next"].add_metric([h.issuer], h.next_update.timestamp() if h.next_update else 0)
            families["pending"].add_metric([h.issuer], h.pending)
            families["stale"].add_metric([h.issuer], 1 if h.past_next_update(now) else 0)
            families["waiting"].add_metric([h.issuer], h.waiting(now))
            families["import"].add_metric(
                [h.issuer], 1 if h.import_due(now, self.revocation.warn_before) else 0
            )
        yield from families.values()
