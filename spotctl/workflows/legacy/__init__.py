"""The frozen first controller (v1), kept so jobs started under it finish the way they began.
"""
