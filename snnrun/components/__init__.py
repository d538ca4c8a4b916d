"""The component library: neuron models, connections, encoders, decoders, surrogates, losses and
learning rules, each family with its own registry (``snnrun list`` shows them all)."""
