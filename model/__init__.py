"""CG-MuAlign in plain PyTorch / PyTorch Geometric. Nothing here imports Spark or Delta, so the
same code trains on the driver, scores inside a Spark worker, and runs alone on a GPU box."""
import warnings

# PyTorch Geometric 2.8 still calls torch.jit.script at import; torch 2.15 warns about it on
# every run. The warning is about PyG's internals, not this code.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
