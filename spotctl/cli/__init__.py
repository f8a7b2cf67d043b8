"""The command line (CLI side): click commands (`spotctl launch/status/logs/cancel/server ...`) and how
they render. Talks to Temporal only through client/, prepares launches through launch/.
"""
