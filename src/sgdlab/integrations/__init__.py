"""sgdlab in the training frameworks: callbacks and TensorBoard.

Each module needs an optional dependency and imports it itself, so that ``import
sgdlab.integrations`` loads none of them:

* :mod:`sgdlab.integrations.lightning` — ``MonitorCallback``, a Lightning ``Callback`` that
  runs a :class:`~sgdlab.Monitor` inside ``Trainer.fit`` (needs ``lightning``);
* :mod:`sgdlab.integrations.huggingface` — ``MonitorCallback``, a Hugging Face
  ``TrainerCallback`` (needs ``transformers``);
* :mod:`sgdlab.integrations.tensorboard` — ``TensorBoardSink`` (live scalars from
  ``Monitor(sinks=[...])``) and ``export_run`` (a stored run as TensorBoard event files:
  ``sgdlab export RUN_ID --tensorboard DIR``) (need ``tensorboard``).

``pip install 'sgdlab[integrations]'`` installs all three.
"""

from sgdlab.integrations._deps import OptionalDependencyError, require

__all__ = ["OptionalDependencyError", "require"]
