"""modules generation package."""
