"""RunSpec: bad values are refused with the field's name; JSON round-trips exactly."""

from __future__ import annotations

import pytest

from engines.spec import ARCH_DEFAULTS, RunSpec

INVALID = [
    ("framework", "tf"),
    ("arch", "rnn"),
    ("epochs", 0),
    ("epochs", 2.5),
    ("batch_size", 0),
    ("batch_size", 1),  # BatchNorm cannot train on one image
    ("lr", 0.0),
    ("lr", -1e-3),
    ("dropout", 1.0),
    ("dropout", "high"),
    ("scheduler", "linear"),
    ("plateau_factor", 1.5),
    ("plateau_patience", -1),
    ("step_size", 0),
    ("step_gamma", 0.0),
    ("es_patience", -2),
    ("es_min_delta", -0.1),
    ("augment_shift", 9),
    ("augment_rotate", 46),
    ("augment_rotate", 2.5),
    ("augment_zoom", 51),
    ("augment_zoom", -1),
    ("label_smoothing", 1.0),
    ("label_smoothing", -0.1),
    ("label_smoothing", "some"),
    ("seed", -1),
    ("seed", True),
    ("train_limit", 0),
    ("train_limit", 1),
    ("val_size", 60000),
    ("val_size", 59999),  # would leave one training image, too few for BatchNorm
    ("arch", ["dnn"]),  # from a --spec file: a list is not a name
    ("arch", {"name": "dnn"}),
    ("test_limit", 10001),
    ("notes", 3),
]


@pytest.mark.parametrize(("field", "value"), INVALID)
def test_invalid_field_is_rejected_with_its_name(field: str, value: object) -> None:
    values = {"framework": "torch", "arch": "cnn", field: value}
    with pytest.raises(ValueError, match=f"^{field}: "):
        RunSpec(**values)


def test_a_spec_takes_its_architectures_defaults_for_every_field_left_out() -> None:
    for arch, defaults in ARCH_DEFAULTS.items():
        spec = RunSpec("keras", arch)
        assert {name: getattr(spec, name) for name in defaults} == defaults
    assert RunSpec("keras", "cnn", epochs=3).epochs == 3  # a given value wins


def test_training_defaults_are_the_same_for_every_framework() -> None:
    for arch in ("dnn", "cnn"):
        specs = [RunSpec(f, arch).to_dict() for f in ("keras", "torch", "lightning")]
        for spec in specs:
            del spec["framework"]
        assert specs[0] == specs[1] == specs[2]
        assert all(specs[0][name] is not None for name in ("batch_size", "lr", "augment_shift"))


def test_stored_specs_from_before_augmentation_read_as_unaugmented() -> None:
    old = RunSpec("torch", "cnn", batch_size=32, lr=1e-3).to_dict()
    # run.json from before the fields existed
    del old["augment_shift"], old["augment_rotate"], old["augment_zoom"]
    del old["label_smoothing"]
    assert not RunSpec.from_stored(old).augmented
    assert RunSpec.from_stored(old).label_smoothing == 0.0
    explicit = {**old, "augment_shift": 2}
    assert RunSpec.from_stored(explicit).augment_shift == 2
    assert RunSpec.from_stored(explicit).augment_rotate == 0
    assert RunSpec.from_stored(explicit).augment_zoom == 0


def test_zoom_alone_counts_as_augmentation() -> None:
    spec = RunSpec("torch", "dnn", augment_shift=0, augment_rotate=0, augment_zoom=5)
    assert spec.augmented and not spec.replace(augment_zoom=0).augmented


def test_explicit_values_override_arch_defaults() -> None:
    spec = RunSpec("torch", "cnn", epochs=2, scheduler="cosine", es_patience=0)
    assert (spec.epochs, spec.scheduler, spec.es_patience) == (2, "cosine", 0)


def test_json_round_trip_is_exact() -> None:
    spec = RunSpec("lightning", "dnn", epochs=7, lr=3e-4, train_limit=1234, notes="hello")
    again = RunSpec.from_json(spec.to_json())
    assert again == spec and again.notes == "hello"
    assert again.to_dict() == spec.to_dict()


def test_unknown_and_missing_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="^colour: unknown spec field"):
        RunSpec.from_dict({"framework": "torch", "arch": "dnn", "colour": "red"})
    with pytest.raises(ValueError, match="^arch: missing"):
        RunSpec.from_dict({"framework": "torch"})
    with pytest.raises(ValueError, match="^spec: not valid JSON"):
        RunSpec.from_json("{not json")


def test_train_limit_is_capped_at_the_images_the_validation_split_leaves() -> None:
    assert RunSpec("torch", "dnn", train_limit=55_000).train_limit == 55_000
    with pytest.raises(ValueError, match="train_limit: must be between 2 and 55000"):
        RunSpec("torch", "dnn", train_limit=55_001)
    assert RunSpec("torch", "dnn", val_size=10_000, train_limit=50_000).train_limit == 50_000
    with pytest.raises(ValueError, match="train_limit: must be between 2 and 50000"):
        RunSpec("torch", "dnn", val_size=10_000, train_limit=50_001)


def test_a_stored_train_limit_above_the_cap_reads_as_the_images_it_trained_on() -> None:
    stored = RunSpec("torch", "dnn").to_dict() | {"train_limit": 60_000}
    assert RunSpec.from_stored(stored).train_limit == 55_000
    with pytest.raises(ValueError, match="train_limit"):
        RunSpec.from_dict(stored)  # a new spec must say what it means


def test_a_stored_run_from_before_the_two_image_minimum_stays_readable() -> None:
    """Keras trained batches of one; such a run must not turn into an unreadable folder."""
    stored = RunSpec("keras", "dnn").to_dict() | {"batch_size": 1, "train_limit": 1}
    spec = RunSpec.from_stored(stored)
    assert (spec.batch_size, spec.train_limit) == (1, 1)
    with pytest.raises(ValueError, match="batch_size: must be between 2"):
        RunSpec.from_dict(stored)  # a new run still may not


def test_notes_longer_than_the_limit_are_refused_for_new_runs_but_stored_ones_stay_readable() -> (
    None
):
    with pytest.raises(ValueError, match="notes: 501 characters, at most 500"):
        RunSpec("torch", "dnn", notes="x" * 501)
    stored = RunSpec("torch", "dnn").to_dict() | {"notes": "x" * 600}  # written before the limit
    assert len(RunSpec.from_stored(stored).notes) == 600
