from spotctl.cli.main import main

main()
