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
    (lambda: TrainSpec(carry_state="forever"), "carry_state='forever' is not allowed; choose one of: epoch, run"),
    (lambda: TrainSpec(carry_state="run", sampling="random"), "use sampling='sequential' or carry_state='epoch'"),
    (lambda: TrainSpec(clip="off"), "clip"),
    (lambda: ModelSpec(init="normal:0"), "number > 0"),
    (lambda: ModelSpec(init="normal:wide"), "number > 0"),
    (lambda: ModelSpec(init="uniform:0.1"), "after 'normal:'"),
    (lambda: ModelSpec(init="gaussian"), "init='gaussian' is not allowed"),
    (lambda: TrainSpec(valid_batch_size=-1), "valid_batch_size"),
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
    for name in ("jay-gru", "jay-lstm", "jay-deep"):  # as seed 003's loop ran: no clip, state over the run
        spec, _ = load_preset(name)
        assert (spec.train.optimizer, spec.train.lr, spec.train.clip, spec.train.carry_state) == \
            ("adam", 0.01, 0.0, "run")
    assert load_preset("jay-deep")[0].model.cell == "lstm"  # the notes' nn.LSTM, named gru_layer
    small, tf = load_preset("ptb-small")[0].train, load_preset("ptb-small-tf")[0].train
    assert [small.lr_at(e) for e in (5, 6, 13)] == [20.0, 10.0, 20.0 / 256]  # main.lua: 1, 1/2, 1/256
    assert [tf.lr_at(e) for e in (4, 5, 13)] == [20.0, 10.0, 20.0 / 512]  # TensorFlow's tutorial
    assert (small.valid_rows, small.eval_batch_size) == (20, 1)  # run_valid's 20 x 20; the test stream


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(SpecError, match="unknown preset 'nope'; available: .*d2l-deep-lstm"):
        load_preset("nope")


def test_what_the_books_did_is_spelt_as_they_did_it():
    """clip='none' (the d2lzh book's clip that never ran) is recorded as 0, no clipping;
    init='normal:S' draws N(0, S) weights (default S = 0.01, d2l 0.17's MXNet init)."""
    assert TrainSpec(clip="none").clip == 0.0
    assert ModelSpec(init="normal").init_std == 0.01 and ModelSpec(init="normal:0.05").init_std == 0.05
    spec = RunSpec().with_overrides(["carry_state=run", "clip=none", "init=normal:0.02"])
    assert (spec.train.carry_state, spec.train.clip, spec.model.init) == ("run", 0.0, "normal:0.02")
    assert RunSpec.from_dict(spec.to_dict()) == spec
