"""Test hook, loaded by runs that tests start: kill the process at a given training step."""

import os
import signal

from pytorch_lightning.callbacks import Callback

KILL_AT_STEP = "LREGLOSS_TEST_KILL_AT_STEP"


class KillAtStep(Callback):
    """SIGKILL this process after the training batch that brings ``global_step`` to ``$LREGLOSS_TEST_KILL_AT_STEP``.

    Runs before Lightning's checkpoint callbacks (Lightning calls those last), so nothing of
    that step is saved; without the variable it does nothing.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = os.environ.get(KILL_AT_STEP)
        if step and trainer.global_step == int(step):
            os.kill(os.getpid(), signal.SIGKILL)
