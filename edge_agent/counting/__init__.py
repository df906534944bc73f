"""Counting: boxes over time become animals. The tracker links boxes into tracks, events
group counted tracks and take MaxN per label, and the pipeline runs one frame through
localiser -> tracker -> classifier -> events. No I/O: the store and the service live
above it."""
