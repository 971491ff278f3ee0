"""Identity: one customer across sources and scripts (resolver), and linking entities to customers."""
