"""rl mode: the learned tool policy (a contextual bandit) and refitting it from recorded runs.
Nothing is imported here: the policy needs numpy, which the fast CLI commands never load."""
