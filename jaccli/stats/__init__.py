"""Statistics built on the derivatives: confidence intervals (confint, on a cluster too) and global sensitivity."""
