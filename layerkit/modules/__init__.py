"""Stages, one role per subpackage, one backend per file; see :mod:`layerkit.modules.base`."""
