"""Stand-in for torch_neuronx (the Neuron PyTorch plugin); the tutorials import it, kernels run on trnsim."""
