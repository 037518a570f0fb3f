"""modules trimap package."""
