"""One file per algorithm family. The learning rule lives here and only here."""
