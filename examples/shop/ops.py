"""What the shop's operators change and watch live: its configuration and its request metrics."""

from illunare import HotConfig, PerformanceMonitor

CONFIG = HotConfig({"markup_percent": 0})
MONITOR = PerformanceMonitor()
