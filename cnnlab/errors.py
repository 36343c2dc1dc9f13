"""The small exception hierarchy of cnnlab.

Every error a user can cause derives from :class:`CnnlabError`; the command line turns
these into one-line messages with exit code 2 (``--debug`` shows the traceback).
Each also derives from the built-in exception a Python user would expect to catch.
"""


class CnnlabError(Exception):
    """Base class of the errors cnnlab raises for bad input."""


class UnknownModelError(CnnlabError, ValueError):
    """A model name that is not in the registry."""


class ModelArgumentError(CnnlabError, TypeError, ValueError):
    """Builder arguments (`create_model(name, **kwargs)`, `--model-kwargs`) a model does not take."""


class InputShapeError(CnnlabError, ValueError):
    """A tensor whose shape a model cannot take."""


class WeightsError(CnnlabError, ValueError):
    """A state dict or weight file that does not fit the model."""


class ConvArithmeticError(CnnlabError, ValueError):
    """A convolution or pooling geometry that does not fit its input."""


class DatasetError(CnnlabError, ValueError):
    """A dataset that is missing, corrupt or of the wrong format."""


class WriteError(CnnlabError, OSError):
    """A file cnnlab was writing could not be written (a full disk, a read-only or forbidden place);
    what was there before is unchanged (writes are atomic)."""


class TrainingDiverged(CnnlabError, ArithmeticError):
    """The loss became NaN or infinite; the last checkpoint written before it is kept."""


class TrainingInterrupted(CnnlabError):
    """Ctrl-C or SIGTERM stopped a run; a resumable checkpoint was written if the run has --out."""

    exit_code = 130
