"""The old import path of the trainer's Python API, kept for callers outside trainer/.

Training is split by role now: trainer.recipe (HParams, hparams_for), trainer.run_folder
(file names, RunError, load_keras_model), trainer.fit (the training loop),
trainer.teacher, trainer.export and trainer.run (train_and_export, the orchestration).
New code imports from those; this module goes once nothing imports it.
"""

from trainer.run import train_and_export

__all__ = ["train_and_export"]
