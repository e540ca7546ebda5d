"""The training-free surgery segmentor and its pieces (docs/method.md §5)."""
