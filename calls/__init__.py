"""Call logic: what a call knows, qualification, slots and time zones, the wrap-up."""
