"""Queue work: what case workers do (claim, complete, delegate, ...), through the engine and the mirror."""
