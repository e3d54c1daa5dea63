"""cupyx.scipy stand-in."""
