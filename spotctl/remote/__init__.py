"""Host-side runners (worker side) that reach a node: SSH (and SFTP), a local process sandbox, and
the simulated node; each runs the node agent (node_agent/) and moves files.
"""
