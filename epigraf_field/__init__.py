"""The generative radiance field: a latent becomes a tri-plane field."""
