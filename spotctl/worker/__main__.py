"""`python -m spotctl.worker`: one worker in the foreground (what deploy/ and the supervisor run)."""

from spotctl.worker.main import main

main()
