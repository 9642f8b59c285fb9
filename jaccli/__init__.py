"""jaccli: exact derivatives of saved MLPs."""
