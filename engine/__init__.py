"""parttrack.engine: the co-part network, its unsupervised training, ONNX/TensorRT export and
the inference runtimes. Imports neither ``tracker`` nor ``ui``."""
