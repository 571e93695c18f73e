"""IG-GAN: a voxel generator learning from 2D images through a non-differentiable renderer and a neural proxy of it."""
