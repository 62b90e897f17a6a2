"""The training worker's parts, one concern each; `cnn_core.train` is the door to them.

    queue.py        a run waits for a training slot and its turn (no Keras)
    recorder.py     the Keras callback that records every epoch and stops on request
    checkpoints.py  resumable checkpoints and the saved model
    optim.py        optimizers, learning-rate schedules, the dtype policy
    fine_tune.py    fine-tuning's two phases: frozen, then unfrozen at a lower rate
    data.py         the run's data: loaded, split, recorded, weighed
    fit.py          what model.fit is given: the feeds and the callbacks
    worker.py       `train_run`: from the queue to the final status

Importing this package imports nothing else: its modules (all but queue.py) import Keras.
"""
