"""The networks: the paper architectures, and apart from them the layers and CPU kernels they are
built from."""
