"""modules decomposition package."""
