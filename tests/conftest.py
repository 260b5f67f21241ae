"""One torch thread per pytest-xdist worker.

The README's test command runs two workers (`pytest -n 2`) on a 2-core machine; with torch's default
of one thread per core that is four busy threads on two cores, and loops of small tensor ops then
spin instead of computing (stop 9: a 5 s SAC test took 265 s in CI). Notebook kernels started by the
tests inherit OMP_NUM_THREADS. A value the user set is kept.
"""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
