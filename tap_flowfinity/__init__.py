"""Singer tap for Flowfinity synchronization views."""
