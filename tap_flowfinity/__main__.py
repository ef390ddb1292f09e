"""`python -m tap_flowfinity`: the same command as the `tap-flowfinity` executable."""

from tap_flowfinity.tap import TapFlowfinity

TapFlowfinity.cli()
