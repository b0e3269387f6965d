"""The agent turn of the seed: process_input, reason, act, reason ... until an answer."""
