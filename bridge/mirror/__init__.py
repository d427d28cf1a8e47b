"""The event mirror: webhook intake, event apply, reconciler."""
