"""CG-MuAlign in plain PyTorch / PyTorch Geometric. Nothing here imports Spark or Delta, so the
same code trains on the driver, scores inside a Spark worker, and runs alone on a GPU box."""
