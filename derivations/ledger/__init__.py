"""The claims of each chapter, one module per chapter (``derivations/ledger/<chapter>.py``); the formulas
they check live in the chapter library ``derivations/<chapter>.py``."""
