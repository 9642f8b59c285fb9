"""Reading model files: the spec, tensor stores (HDF5, NPZ, safetensors), Keras and ONNX files, and the one dense-stack folding helper."""
