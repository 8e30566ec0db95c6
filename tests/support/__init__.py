"""Helpers several test rooms use: the tiny model, a model server process, free ports, events."""
