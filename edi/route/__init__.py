"""Routing: the recipient directory, sender authorisation and the rules that name a queue. Pure decisions."""
