"""Statistics built on the derivatives: confidence intervals and finite-difference checks."""
