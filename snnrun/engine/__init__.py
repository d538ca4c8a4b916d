"""The simulation engine: the network graph, the experiment assembled from config, the training
loop, data parallelism, CUDA-graph capture and the fused kernels."""
