"""Occlusion ordering stages: object layers → their front-to-back order."""
