"""Cloud drivers (shared): aws, gcp and the emulated local cloud behind one `Cloud` protocol
(base.py), their SDK clients and error taxonomies; registry.py names them. The only place
cloud APIs are called. Modules are imported by path: a driver pulls in its cloud's SDK.
"""
