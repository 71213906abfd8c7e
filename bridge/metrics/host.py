"""``bridge_host_*``: the host's CPU, memory, disk and I/O as Prometheus metrics, read at scrape time.

A custom collector: nothing is written per request and nothing runs in the background. Each scrape
asks :func:`bridge.metrics.system.host_snapshot` (psutil, sampled at most once a second per
worker). Levels are gauges; the host's cumulative I/O counters are counters (``_total``, use
``rate()``). Base units: bytes, ratios 0-1. No labels, so nothing can grow with traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .system import HostSnapshot, host_snapshot

__all__ = ["HostCollector", "HOST_METRICS", "include_host"]

#: How one figure is read from a snapshot (None: the platform does not tell).
_Read = Callable[[HostSnapshot], float | None]

#: name -> (type, help, how to read it from a snapshot)
HOST_METRICS: dict[str, tuple[str, str, _Read]] = {
    "bridge_host_cpu_usage_ratio": (
        "gauge", "Busy share of all the host's CPUs (0-1) since the previous sample of the scraped worker.",
        lambda h: None if h.cpu_percent is None else h.cpu_percent / 100.0),
    "bridge_host_cpus": ("gauge", "Logical CPUs of the host.", lambda h: h.cpu_count),
    "bridge_host_load1": ("gauge", "The host's 1-minute load average.", lambda h: h.load_1m),
    "bridge_host_memory_total_bytes": ("gauge", "The host's physical memory.", lambda h: h.memory_total_bytes),
    "bridge_host_memory_used_bytes": (
        "gauge", "The host's memory in use (total - available).", lambda h: h.memory_used_bytes),
    "bridge_host_memory_available_bytes": (
        "gauge", "The host's memory available to new processes without swapping.",
        lambda h: h.memory_available_bytes),
    "bridge_host_memory_usage_ratio": (
        "gauge", "The host's memory in use, as a share of the total (0-1).",
        lambda h: None if h.memory_percent is None else h.memory_percent / 100.0),
    "bridge_host_disk_total_bytes": (
        "gauge", "Size of the file system holding the bridge's working directory.", lambda h: h.disk_total_bytes),
    "bridge_host_disk_used_bytes": (
        "gauge", "Used bytes of the file system holding the bridge's working directory.", lambda h: h.disk_used_bytes),
    "bridge_host_disk_free_bytes": (
        "gauge", "Bytes free for unprivileged users on that file system.", lambda h: h.disk_free_bytes),
    "bridge_host_disk_usage_ratio": (
        "gauge", "Used share of that file system (0-1).",
        lambda h: None if h.disk_percent is None else h.disk_percent / 100.0),
    "bridge_host_network_receive_bytes": (
        "counter", "Bytes received by all the host's network interfaces.", lambda h: h.net.get("bytes_recv")),
    "bridge_host_network_transmit_bytes": (
        "counter", "Bytes sent by all the host's network interfaces.", lambda h: h.net.get("bytes_sent")),
    "bridge_host_network_receive_errors": (
        "counter", "Receive errors on all the host's network interfaces.", lambda h: h.net.get("errin")),
    "bridge_host_network_transmit_errors": (
        "counter", "Transmit errors on all the host's network interfaces.", lambda h: h.net.get("errout")),
    "bridge_host_disk_read_bytes": ("counter", "Bytes read from all the host's disks.",
                                    lambda h: h.disk_io.get("read_bytes")),
    "bridge_host_disk_written_bytes": ("counter", "Bytes written to all the host's disks.",
                                       lambda h: h.disk_io.get("write_bytes")),
    "bridge_host_disk_reads": ("counter", "Read operations completed by all the host's disks.",
                               lambda h: h.disk_io.get("read_count")),
    "bridge_host_disk_writes": ("counter", "Write operations completed by all the host's disks.",
                                lambda h: h.disk_io.get("write_count")),
}


class HostCollector(Collector):
    """Yields the ``bridge_host_*`` families from the cached host sample."""

    def __init__(self, sample: Callable[[], HostSnapshot] = host_snapshot) -> None:
        self._sample = sample

    def describe(self) -> list[Metric]:
        return []  # no names checked at registration: registering must not read the host

    def collect(self) -> Iterator[Metric]:
        try:
            snap: HostSnapshot = self._sample()
        except Exception:  # noqa: BLE001 - a broken reading must never break the whole scrape
            return
        for name, (kind, help_text, read) in HOST_METRICS.items():
            value = read(snap)
            if value is None:
                continue
            family = GaugeMetricFamily(name, help_text) if kind == "gauge" else CounterMetricFamily(name, help_text)
            family.add_metric([], float(value))
            yield family


_COLLECTOR = HostCollector()


def include_host(registry: CollectorRegistry) -> CollectorRegistry:
    """``registry`` with the host collector in it (registered once); returns the registry."""
    if not getattr(registry, "_bridge_host_included", False):
        registry.register(_COLLECTOR)
        registry._bridge_host_included = True  # type: ignore[attr-defined]  # a marker of ours on the registry
    return registry
