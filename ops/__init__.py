"""The operator's package: the ``aftersync`` CLI and what only operators run (DLQ views and redrive,
replay, audit trail verification). Never shipped to Lambda: the function assets hold ``shared/`` and
``functions/`` only."""
