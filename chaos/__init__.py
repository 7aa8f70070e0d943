"""Failure drills (`chaos/run`): each scripted and bounded, on loopback, judged by the same checks."""
