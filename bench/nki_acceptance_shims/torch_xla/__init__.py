"""Stand-in for torch_xla: the "XLA device" is the host CPU, where trnsim reads torch tensors."""
