"""Local HTTP doubles of the external APIs the bot calls, faithful to their documented shapes.

``hux.doubles.market`` serves them together (demo mode, tests, ``hux doubles serve``);
``hux.doubles.faults`` is the runtime fault injection they share.
"""
