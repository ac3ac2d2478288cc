"""One record per instruction (isa/record.py), one file each; isa/registry.py collects them."""
