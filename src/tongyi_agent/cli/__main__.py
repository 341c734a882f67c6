"""`python -m tongyi_agent.cli`: the same CLI as `tongyi-cli` (the integration guide's debug command)."""

from tongyi_agent.cli.app import main

if __name__ == "__main__":
    main()
