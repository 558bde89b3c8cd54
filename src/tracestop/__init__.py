"""tracestop: stop reasoning models once they have their answer."""
