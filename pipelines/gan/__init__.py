"""Building blocks shared by GAN pipelines: discriminator, losses, schedules and input augmentation."""
