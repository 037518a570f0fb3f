"""modules matting package."""
