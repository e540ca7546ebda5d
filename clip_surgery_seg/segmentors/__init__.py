"""The training-free surgery segmentor and its pieces (SPEC §5)."""
