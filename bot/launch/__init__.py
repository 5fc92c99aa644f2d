"""Starts Rasa and the action server with their secrets taken from the environment, never the command line."""
