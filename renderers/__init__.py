"""Renderers: turn any radiance field into pixels (cameras, rays, samplers, compositing)."""
