"""Test harness: run `medtune train` (under accelerate launch or alone) and save each rank's trainable
weights as it ended, so that a test can compare ranks with each other and with a single process."""

import os
import sys

from safetensors.torch import save_file

from medtune.train.recipe import load_recipe
from medtune.train import trainer as T
from medtune.train.run import run_train

_train = T.MedtuneTrainer.train


def train(self, *args, **kwargs):
    result = _train(self, *args, **kwargs)
    weights = {n: p.detach().cpu().contiguous() for n, p in self.model.named_parameters() if p.requires_grad}
    save_file(weights, os.path.join(self.args.output_dir, f"rank{os.environ.get('RANK', '0')}.safetensors"))
    return result


T.MedtuneTrainer.train = train
run_train(load_recipe(sys.argv[1], sys.argv[2:]))
