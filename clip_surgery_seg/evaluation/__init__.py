"""The exact mIoU metric (docs/metric.md)."""
