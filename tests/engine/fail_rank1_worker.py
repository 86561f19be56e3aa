"""A torchrun worker for test_distributed.py: rank 1 fails on its own (as a NaN loss on its shard
would) while rank 0 trains for real, so rank 0's next collective breaks with a bare connection
error and the run must still report rank 1's own error."""

import os

import nbaimaas.engine.distributed as distributed
from nbaimaas.errors import TrainingError

real_fit = distributed.fit


def failing_fit(ctx):
    if os.environ["RANK"] == "1":
        raise TrainingError("loss became NaN at epoch 1, step 3 (rank 1)", "lower the learning rate")
    return real_fit(ctx)


if __name__ == "__main__":
    distributed.fit = failing_fit       # fault injection, in this test worker only
    distributed.main()
