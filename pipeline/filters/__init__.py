"""Heuristic quality filters: the rule table, its families and the datatrove-compatible definitions."""
