"""The paper-trading daemon (``triplegain run``): wiring (``run``), the status it shows, the summary it ends with."""
