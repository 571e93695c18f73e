"""nerfstudio integration: our field as a nerfstudio Field, nerfstudio fields in our renderer, GAN inversion."""
