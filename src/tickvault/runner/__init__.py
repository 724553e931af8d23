"""tickvault.runner: the process that wires collectors, stages and stores together."""
