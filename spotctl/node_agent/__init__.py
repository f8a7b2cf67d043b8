"""Everything shipped to a node (standard library only): the node agent that starts, supervises and
reports the user's program, its state files, notice watchers, mounters and bucket sync. Copied
whole to every VM (activities/node.py); host code imports a module of it only on purpose.
"""
