"""Customer 360: the read side (customer view, lookup, readers, masking, read audit)."""
