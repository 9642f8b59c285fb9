"""``make bench``: jaccli side by side with JAX, torch.func, NumPy finite
differences and the machine's GEMM limit (see the README's Performance section)."""
