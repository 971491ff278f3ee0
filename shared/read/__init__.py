"""Reading the unified state where agents work: the customer view, its lookup, readers, masking and the
read audit."""
