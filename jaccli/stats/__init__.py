"""Statistics built on the derivatives: confidence intervals, finite-difference checks and global sensitivity."""
