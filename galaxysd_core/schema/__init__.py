"""The Galaxy Zoo 2 schema, framework-free (no torch): the decision tree, captions from votes or
labels, derived pseudo-labels and morphology statistics of a source."""
