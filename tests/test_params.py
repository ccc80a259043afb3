import numpy as np
import pytest

from common.errors import SpecError
from common.params import check_params, init_params, num_params, param_shapes
from common.specs import ModelSpec


def test_canonical_shapes_for_a_bidirectional_embedded_lstm():
    model = ModelSpec(cell="lstm", num_layers=2, num_hiddens=6, bidirectional=True, input="embedding", embed_size=5)
    shapes = param_shapes(model, 11)
    assert list(shapes)[0] == "embed.w" and shapes["embed.w"] == (11, 5)
    assert shapes["rnn.l0.fwd.w_ih"] == (24, 5)
    assert shapes["rnn.l1.bwd.w_ih"] == (24, 12)  # layer 2 sees both directions
    assert shapes["rnn.l1.bwd.w_hh"] == (24, 6)
    assert shapes["dense.w"] == (11, 12)
    assert len(shapes) == 1 + 2 * 2 * 4 + 2


def test_book_model_size():
    """d2l 8.10's 2x256 LSTM over 28 characters."""
    params = init_params(ModelSpec(), 28, seed=0)
    assert num_params(params) == 4 * 256 * (28 + 256 + 2) + 4 * 256 * (256 + 256 + 2) + 28 * 256 + 28


def test_init_is_seeded_and_dtype_independent():
    model = ModelSpec(cell="gru", num_layers=1, num_hiddens=8)
    a, b = init_params(model, 7, seed=3), init_params(model, 7, seed=3, dtype="float64")
    c = init_params(model, 7, seed=4)
    np.testing.assert_array_equal(a["rnn.l0.fwd.w_hh"], b["rnn.l0.fwd.w_hh"].astype(np.float32))
    assert not np.array_equal(a["rnn.l0.fwd.w_hh"], c["rnn.l0.fwd.w_hh"])
    assert np.abs(a["rnn.l0.fwd.w_hh"]).max() <= 1 / np.sqrt(8)


def test_normal_init_is_the_books_mxnet_scheme():
    params = init_params(ModelSpec(init="normal", num_hiddens=32), 28, seed=0, dtype="float64")
    assert not params["rnn.l0.fwd.b_ih"].any()
    assert 0.008 < params["rnn.l0.fwd.w_hh"].std() < 0.012


def test_framework_init_has_no_canonical_draw():
    with pytest.raises(SpecError, match="framework"):
        init_params(ModelSpec(init="framework"), 28, seed=0)


def test_check_params_names_the_problem():
    model = ModelSpec(cell="rnn", num_layers=1, num_hiddens=4)
    params = init_params(model, 5, seed=0)
    params["dense.w"] = np.zeros((5, 3), np.float32)
    with pytest.raises(SpecError, match=r"dense.w has shape \(5, 3\)"):
        check_params(params, model, 5)
    del params["dense.b"]
    with pytest.raises(SpecError, match="missing"):
        check_params(params, model, 5)


def test_flops_of_the_books_lstm():
    from common.flops import forward_flops_per_token, train_flops_per_token

    model = ModelSpec()  # LSTM 2x256, one-hot
    layer0 = 2 * 1024 * (28 + 256)
    layer1 = 2 * 1024 * (256 + 256)
    assert forward_flops_per_token(model, 28) == layer0 + layer1 + 2 * 28 * 256
    # the one-hot input's gradient (2 * 1024 * 28) is not needed, so not counted
    assert train_flops_per_token(model, 28) == 3 * (layer0 + layer1 + 2 * 28 * 256) - 2 * 1024 * 28
    embedded = ModelSpec(input="embedding", embed_size=32)
    assert train_flops_per_token(embedded, 28) == 3 * forward_flops_per_token(embedded, 28)
    bi = ModelSpec(cell="gru", num_layers=1, num_hiddens=8, bidirectional=True)
    assert forward_flops_per_token(bi, 5) == 2 * 2 * 24 * (5 + 8) + 2 * 5 * 16
