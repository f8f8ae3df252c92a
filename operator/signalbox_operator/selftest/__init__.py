"""The provider test suite: its checks, the annotation that triggers it, and the ``signalbox-
check`` command.
"""
