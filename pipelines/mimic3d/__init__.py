"""Mimic3D: an EG3D 2D branch, a directly rendered 3D branch taught by 3D-to-2D imitation, 3D-aware convolutions."""
