"""One table of kohya options (backend/training/options.py) behind both ways in: the command
line's flags and a queue job's `train_lora` settings give the same run for the same values,
the wire's fields and defaults are the table's, and an unknown or mistyped option is
`invalid_job` by name whichever way it comes."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from dreamwire.backend.cli import train_lora as cli
from dreamwire.backend.training.job_run import job_request
from dreamwire.backend.training.options import LoraTrainOptions, kohya_options
from dreamwire.backend.training.request import TrainRequest
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.lora_training import LoraTraining

TABLE = [*kohya_options(LoraTrainOptions), *kohya_options(TrainRequest)]
# Not training options: where the pictures are (or the pictures and their repeats), the
# LoRA's name, the job's sample pictures.
WIRE_ONLY = {"data", "pictures", "repeats", "name", "sample_every_n_steps"}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["train-lora", *argv])


def test_the_wire_carries_every_option_of_the_table_with_its_default():
    wire = {f.name: f.default for f in dataclasses.fields(LoraTraining)}
    # seed: a job's own seed is the training's.
    assert set(wire) - WIRE_ONLY == {o.name for o in TABLE} - {"seed"}
    for o in TABLE:
        if o.name != "seed":
            assert wire[o.name] == o.default and type(wire[o.name]) is o.type, o.name


def test_the_command_line_and_a_job_give_the_same_run(tmp_path):
    (tmp_path / "training" / "thing").mkdir(parents=True)
    settings = dict(
        network_dim=4,
        network_alpha=2.0,
        learning_rate=3e-3,
        max_train_steps=7,
        resolution=64,
        max_grad_norm=0.5,
        network_train_unet_only=True,
        save_every_n_steps=3,
        resume=True,
        overwrite=True,
    )
    argv = ["--models", str(tmp_path), "--data", str(tmp_path / "training" / "thing")]
    argv += ["--name", "mine", "--model", "tiny-sd1", "--seed", "9"]
    for key, value in settings.items():
        if value is True:
            argv.append(f"--{key}")
        else:
            argv += [f"--{key}", str(value)]
    from_cli = cli.request_from_args(_parse(argv))
    job = Job(
        mode="train_lora",
        model="tiny-sd1",
        seed=9,
        train_lora=LoraTraining(data="thing", name="mine", **settings),
    )
    from_job = job_request(job, [tmp_path])
    assert from_cli == dataclasses.replace(from_job, job_id="")
    assert from_cli.options.network_dim == 4 and from_cli.save_every_n_steps == 3
    # Left out, each takes the table's default both ways.
    plain = cli.request_from_args(_parse(argv[:10]))
    assert plain.options == LoraTrainOptions(seed=9) and not plain.resume
    assert job_request(
        dataclasses.replace(job, train_lora=LoraTraining("thing", "mine")), [tmp_path]
    ) == dataclasses.replace(plain, job_id=job.job_id)


def test_every_option_has_its_kohya_flag():
    args = _parse(["--models", "m", "--data", "d", "--name", "n", "--rank", "3", "--lr", "0.5"])
    assert all(hasattr(args, o.name) for o in TABLE)
    assert (args.network_dim, args.learning_rate) == (3, 0.5)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"epochs": 3}, "unknown training option(s): epochs"),
        ({"network_dim": "8"}, "network_dim must be a whole number"),
        ({"network_dim": 2.5}, "network_dim must be a whole number"),
        ({"learning_rate": True}, "learning_rate must be a number"),
        ({"resume": 1}, "resume must be true or false"),
        ({"save_every_n_steps": -1}, "save_every_n_steps must be 0 or more"),
        ({"resolution": 30}, "resolution must be a multiple of 8"),
    ],
)
def test_an_unknown_or_invalid_option_is_invalid_job(tmp_path, values, words):
    with pytest.raises(DreamwireError) as err:
        TrainRequest.from_kohya(values, data=tmp_path, name="n", lora_dir=tmp_path)
    assert err.value.code is ErrorCode.INVALID_JOB
    assert words in err.value.message


def test_whole_numbers_are_taken_as_floats():
    options = LoraTrainOptions.from_kohya({"network_alpha": 4, "learning_rate": 1})
    assert options.network_alpha == 4.0 and type(options.network_alpha) is float
