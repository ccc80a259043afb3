import pytest

from common.errors import SpecError
from common.specs import DataSpec, ModelSpec, RunSpec, TrainSpec, load_preset, preset_names


@pytest.mark.parametrize("make,match", [
    (lambda: ModelSpec(cell="transformer"), "cell='transformer' is not allowed; choose one of: rnn, gru, lstm"),
    (lambda: ModelSpec(num_hiddens=0), "num_hiddens=0 must be a whole number"),
    (lambda: ModelSpec(input="embedding"), "embed_size"),
    (lambda: ModelSpec(dropout=1.0), "dropout"),
    (lambda: TrainSpec(batch_size=2.5), "batch_size=2.5"),
    (lambda: TrainSpec(epochs=0), "epochs=0"),
    (lambda: TrainSpec(lr=0), "lr=0 must be a number > 0"),
    (lambda: TrainSpec(seed=2**40), "seed"),
    (lambda: TrainSpec(sampling="shuffled"), "sampling"),
    (lambda: DataSpec(corpus="wiki"), "corpus='wiki'"),
    (lambda: DataSpec(corpus="ptb"), "word-level"),
    (lambda: DataSpec(corpus="jaychou_lyrics", token="word"), "character-level"),
    (lambda: RunSpec(data=DataSpec(num_train=10)), "windows"),
])
def test_bad_fields_name_the_field_and_what_is_allowed(make, match):
    with pytest.raises(SpecError, match=match):
        make()


def test_overrides_by_field_and_by_section():
    spec = RunSpec().with_overrides(["lr=0.5", "model.cell=gru", "num_layers=3", "bidirectional=true"])
    assert spec.train.lr == 0.5 and spec.model.cell == "gru"
    assert spec.model.num_layers == 3 and spec.model.bidirectional is True


@pytest.mark.parametrize("item,match", [
    ("lr", "field=value"), ("colour=red", "unknown field 'colour'"), ("net.cell=gru", "unknown spec section"),
    ("epochs=-1", "epochs=-1"),
])
def test_bad_overrides(item, match):
    with pytest.raises(SpecError, match=match):
        RunSpec().with_overrides([item])


def test_round_trip_through_dict():
    spec = RunSpec(model=ModelSpec(cell="gru", num_hiddens=32), train=TrainSpec(sampling="random"))
    assert RunSpec.from_dict(spec.to_dict()) == spec


def test_book_presets_load_with_their_settings():
    assert {"smoke", "d2l-deep-lstm", "d2l-deep-gru", "jay-gru", "jay-lstm", "jay-deep"} <= set(preset_names())
    spec, book = load_preset("d2l-deep-lstm")
    assert (spec.model.cell, spec.model.num_layers, spec.model.num_hiddens) == ("lstm", 2, 256)
    assert (spec.train.batch_size, spec.train.num_steps, spec.train.lr, spec.train.epochs) == (32, 35, 2.0, 500)
    assert spec.data.max_tokens == 10000 and book["target_ppl"] == 1.1
    assert {r["framework"] for r in book["results"]} == {"mxnet", "pytorch"}
    spec, _ = load_preset("d2l-deep-gru")
    got = (spec.train.sampling, spec.train.batch_size, spec.data.num_train, spec.data.num_val)
    assert got == ("windows", 1024, 10000, 5000)
    spec, _ = load_preset("jay-gru")
    assert (spec.train.optimizer, spec.train.lr, spec.train.clip) == ("adam", 0.01, 0.01)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(SpecError, match="unknown preset 'nope'; available: .*d2l-deep-lstm"):
        load_preset("nope")
