"""modules segmentation package."""
