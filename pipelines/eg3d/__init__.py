"""The eg3d pipeline: EG3D's low-resolution volume render, 2D super-resolution and dual discrimination."""
