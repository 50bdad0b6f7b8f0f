"""The trainer registry: a method trains through its objective's domain's trainer."""

import pytest

from clbench.objectives import OBJECTIVES, Objective
from clbench.train import trainers


def test_image_objectives_train_through_the_one_loop():
    from clbench.train.loop import train

    image = [name for name, obj in OBJECTIVES.items() if obj.domain == "image"]
    assert {"info_nce", "clear_vae", "cross_entropy", "varcon"} <= set(image)
    for name in image:
        assert trainers.trainer_for({"objective": name}) is train


def test_every_domain_of_a_registered_objective_has_a_trainer():
    for name, obj in OBJECTIVES.items():
        assert obj.domain in trainers.TRAINERS, f"objective {name} trains on {obj.domain!r}, which has no trainer"


def test_unknown_domain_and_second_trainer_are_refused():
    with pytest.raises(ValueError, match="domain must be one of"):
        Objective(name="x", family="classifier", loss=None, doc="", domain="audio")
    with pytest.raises(ValueError, match="domain must be one of"):
        trainers.register_trainer("audio", "m:f")
    with pytest.raises(ValueError, match="already has the trainer"):
        trainers.register_trainer("image", "somewhere.else:train")
