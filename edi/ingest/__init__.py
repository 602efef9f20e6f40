"""Intake: find finished files, tell what they are, parse them safely, read the facts routing needs."""
