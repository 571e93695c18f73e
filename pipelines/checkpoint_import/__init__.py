"""Opening the official EG3D / EpiGRAF / Mimic3D ``.pkl`` snapshots without executing anything inside them."""
