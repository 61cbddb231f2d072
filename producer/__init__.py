"""Speed layer: watch-event producer and the versioned event schema it publishes."""
