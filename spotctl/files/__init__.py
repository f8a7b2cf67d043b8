"""Local file steps done the one safe way (shared, the lowest floor: imports nothing of spotctl):
a file created once with its mode set before any byte is written, a tree copied without
writing through links. Used by the clouds, the stores, the codec's key and the runners."""

from spotctl.files.safe import copy_tree, create_once

__all__ = ["copy_tree", "create_once"]
