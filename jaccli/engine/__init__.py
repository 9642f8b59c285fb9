"""Computing derivatives: the activation table, the network, the batched sweeps and the chunk loop."""
