"""The data: the data sets as tensors on the device, the 2-D mixtures, and the offline sources of
the set-up."""
