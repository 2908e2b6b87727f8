"""Random generation from a fitted latent prior (placeholder)."""
