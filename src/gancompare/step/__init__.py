"""The training step: the GAN and its phases, the losses, the regularisers, the hacks, and K seeds
as one batched step."""
