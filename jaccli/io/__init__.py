"""Points in and results out: point readers, output writers and column names."""
