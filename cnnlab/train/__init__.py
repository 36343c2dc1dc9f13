"""Training: `train(recipe(model, dataset, **settings))`. Small datasets live on the training
device and are augmented there, batch by batch; image folders stream through a DataLoader.

- config.py   TrainConfig: every setting, declared once (type, default, range, help, role)
- recipes.py  the default settings of each model on each dataset
- settings.py where settings come from: flags, config files, the run being resumed
- prepare.py  the examples, the model and the data on the device
- loop.py     train() and train_epoch()
- optim.py, losses.py, batches.py, control.py, state.py, report.py, stats.py: their parts
"""

from .config import TrainConfig
from .loop import train
from .recipes import RECIPES, recipe

__all__ = ["RECIPES", "TrainConfig", "recipe", "train"]
