"""Every config dataclass of course_lib refuses nonsense when built, with an error naming the field and value."""

import dataclasses
import typing

import pytest

from course_lib.finetuning.lora import LoRAConfig
from course_lib.finetuning.topic_experiment import TopicExperimentConfig
from course_lib.generation import GenerationSettings
from course_lib.grading.batch import GradingConfig
from course_lib.grading.execute import Limits
from course_lib.in_context import InContextConfig
from course_lib.memory.measure import ZeroDemoConfig
from course_lib.model import TransformerConfig
from course_lib.quantization.measure import ByteLMConfig
from course_lib.scaling.isoflop import IsoFLOPConfig
from course_lib.standins.t5 import StandinConfig
from course_lib.toy_translation import NumberTaskConfig
from course_lib.training import TrainConfig

CONFIGS = [TransformerConfig, TrainConfig, GenerationSettings, IsoFLOPConfig, ByteLMConfig, ZeroDemoConfig,
           NumberTaskConfig, StandinConfig, Limits, GradingConfig, InContextConfig, LoRAConfig,
           TopicExperimentConfig]


def _numeric_fields():
    for cls in CONFIGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            args = set(typing.get_args(hints[f.name])) or {hints[f.name]}
            if args & {int, float} and bool not in args:
                yield pytest.param(cls, f.name, id=f"{cls.__name__}.{f.name}")


@pytest.mark.parametrize("cls,name", list(_numeric_fields()))
@pytest.mark.parametrize("bad", [-1, float("nan"), "3"])
def test_numeric_field_refuses_nonsense(cls, name, bad):
    with pytest.raises(ValueError, match=rf"{name}"):
        cls(**{name: bad})


@pytest.mark.parametrize("cls", CONFIGS, ids=[c.__name__ for c in CONFIGS])
def test_defaults_are_valid(cls):
    cls()


def test_every_config_dataclass_is_listed():
    """A new config dataclass in course_lib must join CONFIGS (and so get its fields checked)."""
    import importlib
    import pkgutil

    import course_lib

    found = set()
    for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
        if info.name.endswith("__main__") or ".metrics" in info.name:
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (dataclasses.is_dataclass(obj) and isinstance(obj, type) and obj.__module__ == info.name
                    and (obj.__name__.endswith(("Config", "Settings")) or obj.__name__ == "Limits")):
                found.add(obj)
    assert found == set(CONFIGS), f"not covered: {found - set(CONFIGS)}"
