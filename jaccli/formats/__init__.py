"""Reading model files: the spec, tensor stores, Keras files and the one dense-stack folding helper."""
