"""The command line: the one place that wires data, training, attacks and reports together."""
