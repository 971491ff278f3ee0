"""After-sales automation: rules as data, customer notifications, ticket dispatch."""
