"""Opening the official EG3D / EpiGRAF ``.pkl`` snapshots without executing anything inside them."""
