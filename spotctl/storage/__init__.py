"""Buckets and log stores (shared): S3, GCS and a local store behind one `Store` protocol, the log
store the CLI reads `logs` from, and the safe file steps several packages use (files.py).
Modules are imported by path: a store pulls in its cloud's SDK.
"""
