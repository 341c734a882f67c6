"""Judging runs and candidates: tasks with known answers and their splits, rewards, the held-out
promotion gate, and A/B experiments on live runs.

Nothing is imported here: importing one module (`experiments` for `prompts list`) must not pull in
the rewards, and through them the agent loop and every tool.
"""
