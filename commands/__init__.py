"""The live response domain: commands, their text syntax, the Defender API client and a simulator.

Nothing here imports Slack; ``bot`` builds on it.
"""
