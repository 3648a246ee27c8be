"""Training code for the small models this project ships (bundled under drivevlm/models/bundled/)."""
