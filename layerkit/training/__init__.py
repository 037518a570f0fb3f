"""Lightning training of the learned stages (nets live in :mod:`layerkit.modules`)."""
