"""The patch-gan pipeline: EpiGRAF's patch-wise training of a tri-plane generator."""
